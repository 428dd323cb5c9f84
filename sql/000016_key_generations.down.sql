DROP TABLE api.vault_key_chain;

CREATE OR REPLACE FUNCTION gate.record_secret_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO api.secret_versions (secret_id, revision, vault_id, ciphertext, created_by)
    VALUES (NEW.id, NEW.revision, NEW.vault_id, NEW.ciphertext, gate.current_user_id());
    RETURN NULL;
END
$$;
ALTER TABLE api.secret_versions DROP COLUMN key_generation;
ALTER TABLE api.secrets DROP COLUMN key_generation;

DROP TRIGGER access_policies_update ON api.access_policies;
DROP FUNCTION gate.grant_update();
DROP POLICY access_policies_reseal ON api.access_policies;
REVOKE UPDATE ON api.access_policies FROM app_user;
-- Grants that no version 1 reader can hold go (their members are invited
-- again by an older client, or lose access, as before sharing existed).
ALTER TABLE api.access_policies NO FORCE ROW LEVEL SECURITY;
DELETE FROM api.access_policies WHERE grant_version <> 1 OR octet_length(sealed_key) > 1024;
ALTER TABLE api.access_policies FORCE ROW LEVEL SECURITY;
ALTER TABLE api.access_policies
    DROP CONSTRAINT access_policies_kem_version,
    DROP COLUMN kem_id,
    DROP COLUMN grant_version,
    DROP COLUMN key_generation,
    DROP CONSTRAINT access_policies_sealed_key_check,
    ADD CONSTRAINT access_policies_sealed_key_check CHECK (octet_length(sealed_key) <= 1024);
