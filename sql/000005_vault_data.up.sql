-- The data of the zero-knowledge client: key bundles, published public keys,
-- vault membership with sealed vault keys, secrets and their history.
-- Everything a user wrote is an envelope the client encrypted (docs/crypto.md);
-- the server sees ids, roles, sizes, revisions and times.

-- The account's key bundle: the account key wrapped by the unlock key and the
-- private keys wrapped by the account key. Returned after a successful login.
ALTER TABLE auth.users ADD COLUMN key_bundle jsonb
    CHECK (key_bundle IS NULL OR (jsonb_typeof(key_bundle) = 'object' AND octet_length(key_bundle::text) <= 16384));

-- authsvc owns the api tables and FORCE binds it to their policies too; the
-- few things it must do there (publish public keys at sign-up, read
-- memberships inside the SECURITY DEFINER helpers below, record history)
-- each get a policy naming it.

-- Public keys, for sharing vaults. Written by authsvc at sign-up; readable by
-- every signed-in user; never changed through the API.
CREATE TABLE api.public_keys (
    user_id         uuid        PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    x25519_public   text        NOT NULL CHECK (x25519_public ~ '^[A-Za-z0-9+/]{43}=$'),
    ed25519_public  text        NOT NULL CHECK (ed25519_public ~ '^[A-Za-z0-9+/]{43}=$'),
    created_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE api.public_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.public_keys FORCE ROW LEVEL SECURITY;
GRANT SELECT ON api.public_keys TO app_user;
CREATE POLICY public_keys_read ON api.public_keys FOR SELECT TO app_user USING (true);
CREATE POLICY public_keys_signup ON api.public_keys FOR INSERT TO authsvc
    WITH CHECK (user_id IN (SELECT id FROM auth.users));

-- Vault metadata (the name) is an envelope with its own revision.
ALTER TABLE api.vaults ADD COLUMN revision bigint NOT NULL DEFAULT 1 CHECK (revision >= 1);
GRANT INSERT (revision) ON api.vaults TO app_user;
GRANT UPDATE (revision) ON api.vaults TO app_user;

-- Membership: who holds which vault with which role, the vault key sealed to
-- that member (HPKE), and the granting member's signature over all of it.
CREATE TABLE api.access_policies (
    vault_id    uuid        NOT NULL REFERENCES api.vaults (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    sealed_key  text        NOT NULL CHECK (octet_length(sealed_key) <= 1024),
    granted_by  uuid        NOT NULL,
    signature   text        NOT NULL CHECK (octet_length(signature) <= 256),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vault_id, user_id)
);
CREATE INDEX access_policies_user_id_idx ON api.access_policies (user_id);
ALTER TABLE api.access_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.access_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY access_policies_definer ON api.access_policies FOR SELECT TO authsvc USING (true);

CREATE POLICY vaults_definer ON api.vaults FOR SELECT TO authsvc USING (true);

-- The caller's role in a vault, or NULL: 'owner' for the vault's creator,
-- otherwise the role of their access policy. SECURITY DEFINER so that the
-- policies of access_policies can ask it without recursing; it reveals only
-- the caller's own membership.
CREATE FUNCTION gate.vault_role(vault uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = vault AND v.owner_id = gate.current_user_id())
                THEN 'owner'
                ELSE (SELECT p.role FROM api.access_policies p WHERE p.vault_id = vault AND p.user_id = gate.current_user_id())
           END
$$;
GRANT EXECUTE ON FUNCTION gate.vault_role(uuid) TO app_user;

-- The vaults in which the caller holds one of roles (any role when NULL).
-- Policies use it as `vault_id IN (SELECT gate.member_vaults(…))`, which
-- PostgreSQL runs once per statement rather than once per row.
CREATE FUNCTION gate.member_vaults(roles text[] DEFAULT NULL) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.id FROM api.vaults v
     WHERE v.owner_id = gate.current_user_id() AND (roles IS NULL OR 'owner' = ANY (roles))
    UNION
    SELECT p.vault_id FROM api.access_policies p
     WHERE p.user_id = gate.current_user_id() AND (roles IS NULL OR p.role = ANY (roles))
$$;
GRANT EXECUTE ON FUNCTION gate.member_vaults(text[]) TO app_user;

-- Vaults: members read; the creator inserts; owners and admins change the
-- metadata; only owners delete.
DROP POLICY vaults_owner_select ON api.vaults;
DROP POLICY vaults_owner_update ON api.vaults;
DROP POLICY vaults_owner_delete ON api.vaults;
-- (owner_id is checked directly too: a row just inserted is not yet visible
-- to the helper's snapshot, and INSERT … RETURNING must see it.)
CREATE POLICY vaults_member_select ON api.vaults FOR SELECT TO app_user
    USING (owner_id = (SELECT gate.current_user_id()) OR id IN (SELECT gate.member_vaults()));
CREATE POLICY vaults_admin_update ON api.vaults FOR UPDATE TO app_user
    USING (id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])))
    WITH CHECK (id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY vaults_owner_delete ON api.vaults FOR DELETE TO app_user
    USING (id IN (SELECT gate.member_vaults(ARRAY['owner'])));

-- Access policies: a member sees their own; owners and admins see the
-- vault's. The first policy of a vault is its creator's own owner grant;
-- later ones are granted by owners and admins. Nobody edits a grant: it is
-- revoked (deleted) and granted anew.
GRANT SELECT, DELETE ON api.access_policies TO app_user;
GRANT INSERT (vault_id, user_id, role, sealed_key, granted_by, signature) ON api.access_policies TO app_user;
CREATE POLICY access_policies_select ON api.access_policies FOR SELECT TO app_user
    USING (user_id = (SELECT gate.current_user_id()) OR vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY access_policies_insert ON api.access_policies FOR INSERT TO app_user
    WITH CHECK (
        granted_by = (SELECT gate.current_user_id())
        AND (
            (user_id = (SELECT gate.current_user_id()) AND role = 'owner'
             AND EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = vault_id AND v.owner_id = (SELECT gate.current_user_id())))
            OR gate.vault_role(vault_id) = 'owner'
            OR (gate.vault_role(vault_id) = 'admin' AND role IN ('editor', 'viewer'))
        )
    );
CREATE POLICY access_policies_delete ON api.access_policies FOR DELETE TO app_user
    USING (user_id = (SELECT gate.current_user_id()) OR vault_id IN (SELECT gate.member_vaults(ARRAY['owner'])));

-- Secrets: one envelope per secret (name and value together), with a
-- revision the client binds into the envelope's associated data.
CREATE TABLE api.secrets (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    vault_id    uuid        NOT NULL REFERENCES api.vaults (id) ON DELETE CASCADE,
    revision    bigint      NOT NULL DEFAULT 1 CHECK (revision >= 1),
    ciphertext  text        NOT NULL CHECK (octet_length(ciphertext) <= 87400),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid        NOT NULL DEFAULT gate.current_user_id()
);
CREATE INDEX secrets_vault_id_idx ON api.secrets (vault_id, id);
ALTER TABLE api.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.secrets FORCE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON api.secrets TO app_user;
GRANT INSERT (id, vault_id, revision, ciphertext) ON api.secrets TO app_user;
GRANT UPDATE (revision, ciphertext) ON api.secrets TO app_user;
CREATE POLICY secrets_member_select ON api.secrets FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
CREATE POLICY secrets_editor_insert ON api.secrets FOR INSERT TO app_user
    WITH CHECK (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY secrets_editor_update ON api.secrets FOR UPDATE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])))
    WITH CHECK (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY secrets_editor_delete ON api.secrets FOR DELETE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));

-- Revisions only move forward, one step at a time: a new secret starts at 1
-- and every change adds one. (A malicious server could break this; the
-- client does not rely on it and checks revisions itself.)
CREATE FUNCTION gate.secret_revision() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.revision <> 1 THEN
            RAISE EXCEPTION 'a new secret starts at revision 1' USING ERRCODE = '22023';
        END IF;
    ELSIF NEW.revision <> OLD.revision + 1 THEN
        RAISE EXCEPTION 'revision must be % (one more than the current)', OLD.revision + 1 USING ERRCODE = '22023';
    ELSE
        NEW.updated_at := now();
        NEW.updated_by := gate.current_user_id();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER secrets_revision BEFORE INSERT OR UPDATE ON api.secrets
    FOR EACH ROW EXECUTE FUNCTION gate.secret_revision();

CREATE FUNCTION gate.vault_revision() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.revision <> 1 THEN
        RAISE EXCEPTION 'a new vault starts at revision 1' USING ERRCODE = '22023';
    ELSIF TG_OP = 'UPDATE' AND NEW.revision <> OLD.revision + 1 THEN
        RAISE EXCEPTION 'revision must be % (one more than the current)', OLD.revision + 1 USING ERRCODE = '22023';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER vaults_revision BEFORE INSERT OR UPDATE ON api.vaults
    FOR EACH ROW EXECUTE FUNCTION gate.vault_revision();

-- History: every revision of every secret, written by a trigger, readable by
-- the vault's members, changed by nobody.
CREATE TABLE api.secret_versions (
    secret_id   uuid        NOT NULL REFERENCES api.secrets (id) ON DELETE CASCADE,
    revision    bigint      NOT NULL,
    vault_id    uuid        NOT NULL,
    ciphertext  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  uuid,
    PRIMARY KEY (secret_id, revision)
);
ALTER TABLE api.secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.secret_versions FORCE ROW LEVEL SECURITY;
GRANT SELECT ON api.secret_versions TO app_user;
CREATE POLICY secret_versions_member_select ON api.secret_versions FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
CREATE POLICY secret_versions_record ON api.secret_versions FOR INSERT TO authsvc
    WITH CHECK (true);

-- SECURITY DEFINER: app_user may not write history itself.
CREATE FUNCTION gate.record_secret_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO api.secret_versions (secret_id, revision, vault_id, ciphertext, created_by)
    VALUES (NEW.id, NEW.revision, NEW.vault_id, NEW.ciphertext, gate.current_user_id());
    RETURN NULL;
END
$$;
CREATE TRIGGER secrets_history AFTER INSERT OR UPDATE ON api.secrets
    FOR EACH ROW EXECUTE FUNCTION gate.record_secret_version();
