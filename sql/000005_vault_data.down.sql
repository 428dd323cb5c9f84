DROP TABLE IF EXISTS api.secret_versions;
DROP TABLE IF EXISTS api.secrets;
DROP FUNCTION IF EXISTS gate.record_secret_version();
DROP FUNCTION IF EXISTS gate.secret_revision();
DROP TRIGGER IF EXISTS vaults_revision ON api.vaults;
DROP FUNCTION IF EXISTS gate.vault_revision();

DROP POLICY IF EXISTS vaults_member_select ON api.vaults;
DROP POLICY IF EXISTS vaults_admin_update ON api.vaults;
DROP POLICY IF EXISTS vaults_owner_delete ON api.vaults;
DROP TABLE IF EXISTS api.access_policies;
DROP FUNCTION IF EXISTS gate.vault_role(uuid);
DROP FUNCTION IF EXISTS gate.member_vaults(text[]);
DROP POLICY IF EXISTS vaults_definer ON api.vaults;
CREATE POLICY vaults_owner_select ON api.vaults FOR SELECT TO app_user
    USING (owner_id = (SELECT gate.current_user_id()));
CREATE POLICY vaults_owner_update ON api.vaults FOR UPDATE TO app_user
    USING (owner_id = (SELECT gate.current_user_id()))
    WITH CHECK (owner_id = (SELECT gate.current_user_id()));
CREATE POLICY vaults_owner_delete ON api.vaults FOR DELETE TO app_user
    USING (owner_id = (SELECT gate.current_user_id()));

REVOKE INSERT (revision), UPDATE (revision) ON api.vaults FROM app_user;
ALTER TABLE api.vaults DROP COLUMN IF EXISTS revision;
DROP TABLE IF EXISTS api.public_keys;
ALTER TABLE auth.users DROP COLUMN IF EXISTS key_bundle;
