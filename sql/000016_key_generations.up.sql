-- Vault key generations (docs/crypto.md §8).
--
-- A vault's key is replaced by a new generation whenever a member is
-- removed (or leaves, or an owner or admin rotates); each member's grant
-- seals the newest generation's key to them, and the key of every older
-- generation is kept wrapped under the next one (api.vault_key_chain), so
-- that a member holding the newest key can open everything and a removed
-- member, who never receives the new key, nothing written after.
--
-- 1. Grants name their generation and, from version 2 on, the HPKE KEM
--    (X-Wing 0x647a = 25722, or X25519 0x0020 = 32) their sealed key uses;
--    X-Wing sealed keys are 1168 bytes. A rotation re-seals every remaining
--    member's grant in place (UPDATE): owners and admins may do it, a grant's
--    generation never goes back, and only an owner changes the role of an
--    owner or admin (or gives those roles).
-- 2. Each secret and each stored revision names the generation its
--    envelope is sealed under; readers pick the key by it.
-- 3. The chain of older keys: one row per generation g, the key of g sealed
--    under the key of g+1 (envelope type 8). Insert-only, by owners and
--    admins; members read it.

-- ---------------------------------------------------------------- grants

ALTER TABLE api.access_policies
    DROP CONSTRAINT access_policies_sealed_key_check,
    ADD CONSTRAINT access_policies_sealed_key_check CHECK (octet_length(sealed_key) <= 2048),
    ADD COLUMN key_generation bigint   NOT NULL DEFAULT 1 CHECK (key_generation >= 1),
    ADD COLUMN grant_version  smallint NOT NULL DEFAULT 1 CHECK (grant_version IN (1, 2)),
    ADD COLUMN kem_id         integer  CHECK (kem_id IN (32, 25722)),
    ADD CONSTRAINT access_policies_kem_version CHECK ((grant_version = 2) = (kem_id IS NOT NULL));
GRANT INSERT (key_generation, grant_version, kem_id) ON api.access_policies TO app_user;
GRANT UPDATE (role, sealed_key, granted_by, signature, key_generation, grant_version, kem_id) ON api.access_policies TO app_user;

-- Re-sealing: owners and admins of the vault, signing as themselves.
CREATE POLICY access_policies_reseal ON api.access_policies FOR UPDATE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])))
    WITH CHECK (granted_by = (SELECT gate.current_user_id())
                AND vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));

CREATE FUNCTION gate.grant_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.vault_id <> OLD.vault_id OR NEW.user_id <> OLD.user_id THEN
        RAISE EXCEPTION 'a grant stays with its vault and member' USING ERRCODE = '42501';
    END IF;
    IF NEW.key_generation < OLD.key_generation THEN
        RAISE EXCEPTION 'a grant never goes back to an older key generation' USING ERRCODE = '42501';
    END IF;
    IF NEW.role <> OLD.role AND gate.vault_role(NEW.vault_id) IS DISTINCT FROM 'owner'
       AND NOT (NEW.role IN ('editor', 'viewer') AND OLD.role IN ('editor', 'viewer')) THEN
        RAISE EXCEPTION 'only an owner gives or takes the roles owner and admin' USING ERRCODE = '42501';
    END IF;
    NEW.created_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER access_policies_update BEFORE UPDATE ON api.access_policies
    FOR EACH ROW EXECUTE FUNCTION gate.grant_update();

-- ---------------------------------------------------------------- secrets

ALTER TABLE api.secrets ADD COLUMN key_generation bigint NOT NULL DEFAULT 1 CHECK (key_generation >= 1);
GRANT INSERT (key_generation) ON api.secrets TO app_user;
GRANT UPDATE (key_generation) ON api.secrets TO app_user;
ALTER TABLE api.secret_versions ADD COLUMN key_generation bigint NOT NULL DEFAULT 1;

-- 000005's history trigger, recording the generation too.
CREATE OR REPLACE FUNCTION gate.record_secret_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO api.secret_versions (secret_id, revision, vault_id, ciphertext, created_by, key_generation)
    VALUES (NEW.id, NEW.revision, NEW.vault_id, NEW.ciphertext, gate.current_user_id(), NEW.key_generation);
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------- the chain of older keys

CREATE TABLE api.vault_key_chain (
    vault_id    uuid        NOT NULL REFERENCES api.vaults (id) ON DELETE CASCADE,
    generation  bigint      NOT NULL CHECK (generation >= 1),
    wrapped     text        NOT NULL CHECK (octet_length(wrapped) <= 256),
    created_by  uuid        NOT NULL DEFAULT gate.current_user_id(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vault_id, generation)
);
ALTER TABLE api.vault_key_chain ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.vault_key_chain FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.vault_key_chain FROM PUBLIC;
GRANT SELECT ON api.vault_key_chain TO app_user;
GRANT INSERT (vault_id, generation, wrapped) ON api.vault_key_chain TO app_user;
CREATE POLICY vault_key_chain_member_select ON api.vault_key_chain FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
CREATE POLICY vault_key_chain_admin_insert ON api.vault_key_chain FOR INSERT TO app_user
    WITH CHECK (created_by = (SELECT gate.current_user_id())
                AND vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));

-- Insert-only, like the log: rows go only with their vault.
CREATE TRIGGER vault_key_chain_append_only BEFORE UPDATE OR DELETE ON api.vault_key_chain
    FOR EACH ROW EXECUTE FUNCTION gate.vault_log_append_only();
