DROP FUNCTION IF EXISTS gate.check_request();
DROP FUNCTION IF EXISTS gate.refuse(text, text);
DROP FUNCTION IF EXISTS gate.current_user_id();
REVOKE USAGE ON SCHEMA gate FROM authenticator;
