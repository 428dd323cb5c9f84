REVOKE SELECT ON api.vault_events FROM app_user;
GRANT SELECT ON api.vault_events TO app_user;

DROP TRIGGER IF EXISTS secrets_a_taken_id ON api.secrets;
DROP TRIGGER IF EXISTS vaults_a_taken_id ON api.vaults;
DROP FUNCTION IF EXISTS gate.refuse_taken_id();
DROP POLICY IF EXISTS secrets_definer ON api.secrets;

DROP TRIGGER IF EXISTS secrets_retire_id ON api.secrets;
DROP TRIGGER IF EXISTS vaults_retire_id ON api.vaults;
DROP FUNCTION IF EXISTS gate.retire_id();
DROP TABLE IF EXISTS auth.retired_ids;
