DROP FUNCTION IF EXISTS auth.publish_jwks(text, text, text, integer);
DROP TABLE IF EXISTS auth.token_policy;
DROP TABLE IF EXISTS auth.signing_keys;
DROP TABLE IF EXISTS auth.refresh_tokens;
DROP TABLE IF EXISTS auth.sessions;
DROP TABLE IF EXISTS auth.users;
