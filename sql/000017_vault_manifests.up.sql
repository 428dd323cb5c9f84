-- Signed vault manifests and the atomic writes (docs/crypto.md §10).
--
-- 1. Each vault has one manifest row: the newest signed statement of its
--    key generation, its membership log head and every (secret id,
--    revision, generation). Its version rises by exactly one per write and
--    each version names the previous one's hash, so two writers that start
--    from the same version conflict (409) instead of overwriting each other.
--    Members read it; owners, admins and editors write it, signing as
--    themselves.
-- 2. Writes that change what a manifest covers go through functions that
--    apply the rows and the new manifest in one transaction, as the caller
--    (SECURITY INVOKER: every row-level rule applies inside), so a crash
--    never leaves a manifest that disagrees with the rows:
--      api.create_vault     a vault with its owner's grant, the log's first
--                           entry and the first manifest;
--      api.commit_secrets   secrets created, changed, deleted, the vault's
--                           name, and the manifest;
--      api.commit_members   log entries, grants, older keys, deleted grants
--                           and the manifest (share, unshare, change a role,
--                           rotate, leave, and the first log entry and
--                           manifest of a vault made before manifests).
-- 3. Once a vault has a manifest, its secrets, its name and its manifest
--    change only through those functions: a plain write is refused (403,
--    42501) rather than leaving members with a listing the manifest does not
--    cover. Vaults without a manifest (made before this migration, until
--    their owner's client next opens them) are written as before.
-- 4. api.vault_states gives a member, in one snapshot, every vault it may
--    open with its own grant, log, older keys and manifest.

CREATE TABLE api.vault_manifests (
    vault_id    uuid        PRIMARY KEY REFERENCES api.vaults (id) ON DELETE CASCADE,
    version     bigint      NOT NULL CHECK (version >= 1),
    manifest    text        NOT NULL CHECK (manifest ~ '^[A-Za-z0-9+/]{232}$'),
    signature   text        NOT NULL CHECK (signature ~ '^[A-Za-z0-9+/]{86}==$'),
    signer_id   uuid        NOT NULL DEFAULT gate.current_user_id(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE api.vault_manifests ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.vault_manifests FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.vault_manifests FROM PUBLIC;
GRANT SELECT ON api.vault_manifests TO app_user;
GRANT INSERT (vault_id, version, manifest, signature) ON api.vault_manifests TO app_user;
GRANT UPDATE (version, manifest, signature, signer_id) ON api.vault_manifests TO app_user;
CREATE POLICY vault_manifests_member_select ON api.vault_manifests FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
CREATE POLICY vault_manifests_writer_insert ON api.vault_manifests FOR INSERT TO app_user
    WITH CHECK (signer_id = (SELECT gate.current_user_id())
                AND vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY vault_manifests_writer_update ON api.vault_manifests FOR UPDATE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])))
    WITH CHECK (signer_id = (SELECT gate.current_user_id())
                AND vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY vault_manifests_definer ON api.vault_manifests FOR SELECT TO authsvc USING (true);

-- Whether this transaction is inside one of the write functions for vault.
-- They set zsm.commit (transaction-local); PostgREST lets a client set no
-- setting but its own request.* ones, so only those functions can.
CREATE FUNCTION gate.committing(vault uuid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT current_setting('zsm.commit', true) = vault::text $$;
GRANT EXECUTE ON FUNCTION gate.committing(uuid) TO app_user;

-- The manifest's own bytes (docs/crypto.md §10):
--   "zsm v1 vault-manifest" 0x00 | vault_id 16 | version 8 | prev_hash 32 | generation 8
--   | log_seq 8 | log_hash 32 | meta_revision 8 | count 8 | digest 32
-- must name the row's vault and version, the previous version's hash
-- (zero at version 1), and an entry of the vault's log by its hash. The
-- signer is the caller. Only the write functions change it.
CREATE FUNCTION gate.vault_manifest_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m       bytea;
    prev    bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    log_seq bigint;
    lh      bytea;
BEGIN
    IF NOT gate.committing(NEW.vault_id) THEN
        RAISE EXCEPTION 'a vault manifest changes only with the rows it covers: use api.commit_secrets or api.commit_members'
            USING ERRCODE = '42501';
    END IF;
    m := decode(NEW.manifest, 'base64');
    IF octet_length(m) <> 174 OR substring(m FROM 1 FOR 22) <> convert_to('zsm v1 vault-manifest', 'UTF8') || '\x00'::bytea THEN
        RAISE EXCEPTION 'not a vault manifest' USING ERRCODE = '22023';
    END IF;
    IF substring(m FROM 23 FOR 16) <> uuid_send(NEW.vault_id) OR substring(m FROM 39 FOR 8) <> int8send(NEW.version) THEN
        RAISE EXCEPTION 'the manifest names another vault or version than its row' USING ERRCODE = '22023';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.vault_id <> OLD.vault_id OR NEW.version <> OLD.version + 1 THEN
            RAISE EXCEPTION 'the manifest moved on: version % must follow version % (fetch it again and retry)',
                NEW.version, OLD.version USING ERRCODE = 'unique_violation';
        END IF;
        prev := sha256(decode(OLD.manifest, 'base64') || decode(OLD.signature, 'base64'));
    ELSIF NEW.version <> 1 THEN
        RAISE EXCEPTION 'a vault''s first manifest is version 1' USING ERRCODE = '22023';
    END IF;
    IF substring(m FROM 47 FOR 32) <> prev THEN
        RAISE EXCEPTION 'the manifest does not follow the current one (fetch it again and retry)' USING ERRCODE = 'unique_violation';
    END IF;
    log_seq := ('x' || encode(substring(m FROM 87 FOR 8), 'hex'))::bit(64)::bigint;
    SELECT sha256(decode(l.entry, 'base64') || decode(l.signature, 'base64')) INTO lh
      FROM api.vault_log l WHERE l.vault_id = NEW.vault_id AND l.seq = log_seq;
    IF lh IS NULL OR lh <> substring(m FROM 95 FOR 32) THEN
        RAISE EXCEPTION 'the manifest names no entry of this vault''s log' USING ERRCODE = '22023';
    END IF;
    NEW.signer_id := gate.current_user_id();
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER vault_manifests_write BEFORE INSERT OR UPDATE ON api.vault_manifests
    FOR EACH ROW EXECUTE FUNCTION gate.vault_manifest_write();

-- A vault with a manifest changes its secrets and its name only inside the
-- write functions. Rows that go with their vault are not held up.
-- SECURITY DEFINER to see whether the vault has a manifest.
CREATE FUNCTION gate.manifest_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vault uuid;
BEGIN
    IF TG_TABLE_NAME = 'vaults' THEN
        vault := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        vault := OLD.vault_id;
        IF NOT EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = vault) THEN
            RETURN OLD;
        END IF;
    ELSE
        vault := NEW.vault_id;
    END IF;
    IF EXISTS (SELECT 1 FROM api.vault_manifests m WHERE m.vault_id = vault) AND NOT gate.committing(vault) THEN
        RAISE EXCEPTION 'this vault has a signed manifest: its secrets and name change only with it, through api.commit_secrets'
            USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
-- Named to run after the taken-id check of 000012 (triggers fire in name
-- order), so a taken id still answers 409 the same way.
CREATE TRIGGER secrets_b_manifest_guard BEFORE INSERT OR UPDATE OR DELETE ON api.secrets
    FOR EACH ROW EXECUTE FUNCTION gate.manifest_guard();
CREATE TRIGGER vaults_b_manifest_guard BEFORE UPDATE ON api.vaults
    FOR EACH ROW EXECUTE FUNCTION gate.manifest_guard();

-- ---------------------------------------------------------------- the write functions

-- Ends the request with 409 and a code of its own: somebody else wrote
-- meanwhile; the client fetches again and retries.
CREATE FUNCTION gate.write_conflict(what text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE SQLSTATE 'PGRST' USING
        message = json_build_object('code', 'write_conflict',
                                    'message', what || ' changed meanwhile; fetch the vault again and retry',
                                    'details', NULL, 'hint', NULL)::text,
        detail  = json_build_object('status', 409, 'headers', json_build_object())::text;
END
$$;
GRANT EXECUTE ON FUNCTION gate.write_conflict(text) TO app_user;

-- Writes the manifest m ({"version", "manifest", "signature"}): version 1
-- is inserted (a new vault, or one made before manifests), any other
-- replaces version - 1. Anything else is a conflict.
CREATE FUNCTION gate.put_manifest(vault uuid, m json) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v  bigint := (m ->> 'version')::bigint;
    n  integer;
BEGIN
    IF v IS NULL OR m ->> 'manifest' IS NULL OR m ->> 'signature' IS NULL THEN
        RAISE EXCEPTION 'the manifest needs version, manifest and signature' USING ERRCODE = '22023';
    END IF;
    IF v = 1 THEN
        IF EXISTS (SELECT 1 FROM api.vault_manifests x WHERE x.vault_id = vault) THEN
            PERFORM gate.write_conflict('the vault manifest');
        END IF;
        INSERT INTO api.vault_manifests (vault_id, version, manifest, signature)
        VALUES (vault, 1, m ->> 'manifest', m ->> 'signature');
        RETURN;
    END IF;
    UPDATE api.vault_manifests x
       SET version = v, manifest = m ->> 'manifest', signature = m ->> 'signature', signer_id = gate.current_user_id()
     WHERE x.vault_id = vault AND x.version = v - 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> 1 THEN
        PERFORM gate.write_conflict('the vault manifest');
    END IF;
END
$$;
GRANT EXECUTE ON FUNCTION gate.put_manifest(uuid, json) TO app_user;

-- Secrets and the vault's name with the new manifest, in one transaction.
--   upserts: [{"id", "revision", "key_generation", "ciphertext", "rotated"?}]
--            revision 1 creates the secret; revision r replaces r - 1;
--            "rotated": true marks a rotation (api.rotate_secret's event)
--   deletes: [{"id", "revision"}] deletes the secret at that revision
--   meta:    {"meta", "revision"} renames (owners and admins)
-- Viewers are refused (403, 42501); a row or manifest that changed
-- meanwhile is write_conflict (409); nothing is written then.
CREATE FUNCTION api.commit_secrets(vault_id uuid, manifest json, upserts json DEFAULT '[]', deletes json DEFAULT '[]', meta json DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vault  uuid := commit_secrets.vault_id;
    role   text := gate.vault_role(commit_secrets.vault_id);
    ups    json := coalesce(commit_secrets.upserts, '[]'::json);
    dels   json := coalesce(commit_secrets.deletes, '[]'::json);
    u      record;
    n      bigint;
    want   bigint;
BEGIN
    IF role IS NULL OR role NOT IN ('owner', 'admin', 'editor') THEN
        RAISE EXCEPTION 'only owners, admins and editors of this vault write to it (your role: %)', coalesce(role, 'none')
            USING ERRCODE = '42501';
    END IF;
    IF meta IS NOT NULL AND role NOT IN ('owner', 'admin') THEN
        RAISE EXCEPTION 'only owners and admins rename a vault (your role: %)', role USING ERRCODE = '42501';
    END IF;
    PERFORM set_config('zsm.commit', vault::text, true);
    -- The manifest first: its row lock orders concurrent writers.
    PERFORM gate.put_manifest(vault, manifest);
    -- Set-based, so that row-level security's checks run once per
    -- statement rather than once per secret.
    INSERT INTO api.secrets (id, vault_id, revision, key_generation, ciphertext)
    SELECT x.id, vault, 1, x.key_generation, x.ciphertext
      FROM json_to_recordset(ups) AS x(id uuid, revision bigint, key_generation bigint, ciphertext text, rotated boolean)
     WHERE x.revision = 1;
    SELECT count(*) INTO want
      FROM json_to_recordset(ups) AS x(id uuid, revision bigint, rotated boolean)
     WHERE x.revision <> 1 AND NOT coalesce(x.rotated, false);
    UPDATE api.secrets s
       SET revision = x.revision, key_generation = x.key_generation, ciphertext = x.ciphertext
      FROM json_to_recordset(ups) AS x(id uuid, revision bigint, key_generation bigint, ciphertext text, rotated boolean)
     WHERE x.revision <> 1 AND NOT coalesce(x.rotated, false)
       AND s.id = x.id AND s.vault_id = vault AND s.revision = x.revision - 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> want THEN
        PERFORM gate.write_conflict('a secret');
    END IF;
    -- A rotation is marked secret by secret (api.rotate_secret's event).
    FOR u IN SELECT * FROM json_to_recordset(ups) AS x(id uuid, revision bigint, key_generation bigint, ciphertext text, rotated boolean)
              WHERE x.revision <> 1 AND coalesce(x.rotated, false) LOOP
        PERFORM set_config('zsm.rotating_secret', u.id::text, true);
        UPDATE api.secrets s SET revision = u.revision, key_generation = u.key_generation, ciphertext = u.ciphertext
         WHERE s.id = u.id AND s.vault_id = vault AND s.revision = u.revision - 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('zsm.rotating_secret', '', true);
        IF n <> 1 THEN
            PERFORM gate.write_conflict('secret ' || u.id);
        END IF;
    END LOOP;
    SELECT count(*) INTO want FROM json_array_elements(dels);
    DELETE FROM api.secrets s
     USING json_to_recordset(dels) AS x(id uuid, revision bigint)
     WHERE s.id = x.id AND s.vault_id = vault AND s.revision = x.revision;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> want THEN
        PERFORM gate.write_conflict('a secret');
    END IF;
    IF meta IS NOT NULL THEN
        UPDATE api.vaults v SET meta = commit_secrets.meta ->> 'meta', revision = (commit_secrets.meta ->> 'revision')::bigint
         WHERE v.id = vault AND v.revision = (commit_secrets.meta ->> 'revision')::bigint - 1;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
            PERFORM gate.write_conflict('the vault''s name');
        END IF;
    END IF;
    PERFORM set_config('zsm.commit', '', true);
END
$$;
GRANT EXECUTE ON FUNCTION api.commit_secrets(uuid, json, json, json, json) TO app_user;

-- Membership changes with the new manifest, in one transaction.
--   log_entries: [{"seq", "entry", "signature"}] appended in order
--   grants:      [{"user_id", "role", "sealed_key", "signature", "key_generation", "kem_id"}]
--                version 2 grants by the caller: a member's grant is
--                replaced (re-sealed), a new member's inserted
--   chain:       [{"generation", "wrapped"}] older keys
--   delete_user_ids: grants deleted (removed members, or the caller leaving)
--   manifest:    the new manifest, or null (a member leaving)
-- Every row-level rule applies (who may append what, grant, remove);
-- refusals are 403 (42501), conflicts 409. Nothing is written then.
CREATE FUNCTION api.commit_members(vault_id uuid, log_entries json, grants json DEFAULT '[]', chain json DEFAULT '[]',
                                   manifest json DEFAULT NULL, delete_user_ids uuid[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vault  uuid := commit_members.vault_id;
    me     uuid := gate.current_user_id();
    e      json;
    n      integer;
BEGIN
    IF gate.vault_role(vault) IS NULL THEN
        RAISE EXCEPTION 'not a member of this vault' USING ERRCODE = '42501';
    END IF;
    PERFORM set_config('zsm.commit', vault::text, true);
    FOR e IN SELECT * FROM json_array_elements(coalesce(log_entries, '[]'::json)) LOOP
        INSERT INTO api.vault_log (vault_id, seq, entry, signature)
        VALUES (vault, (e ->> 'seq')::bigint, e ->> 'entry', e ->> 'signature');
    END LOOP;
    FOR e IN SELECT * FROM json_array_elements(coalesce(chain, '[]'::json)) LOOP
        INSERT INTO api.vault_key_chain (vault_id, generation, wrapped)
        VALUES (vault, (e ->> 'generation')::bigint, e ->> 'wrapped');
    END LOOP;
    IF cardinality(delete_user_ids) > 0 THEN
        DELETE FROM api.access_policies p WHERE p.vault_id = vault AND p.user_id = ANY (delete_user_ids);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> cardinality(delete_user_ids) THEN
            RAISE EXCEPTION 'a grant to delete is not there, or not yours to delete' USING ERRCODE = '42501';
        END IF;
    END IF;
    FOR e IN SELECT * FROM json_array_elements(coalesce(grants, '[]'::json)) LOOP
        UPDATE api.access_policies p
           SET role = e ->> 'role', sealed_key = e ->> 'sealed_key', granted_by = me, signature = e ->> 'signature',
               key_generation = (e ->> 'key_generation')::bigint, grant_version = 2, kem_id = (e ->> 'kem_id')::integer
         WHERE p.vault_id = vault AND p.user_id = (e ->> 'user_id')::uuid;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            INSERT INTO api.access_policies (vault_id, user_id, role, sealed_key, granted_by, signature,
                                             key_generation, grant_version, kem_id)
            VALUES (vault, (e ->> 'user_id')::uuid, e ->> 'role', e ->> 'sealed_key', me, e ->> 'signature',
                    (e ->> 'key_generation')::bigint, 2, (e ->> 'kem_id')::integer);
        END IF;
    END LOOP;
    IF manifest IS NOT NULL THEN
        PERFORM gate.put_manifest(vault, manifest);
    END IF;
    PERFORM set_config('zsm.commit', '', true);
END
$$;
GRANT EXECUTE ON FUNCTION api.commit_members(uuid, json, json, json, json, uuid[]) TO app_user;

-- A new vault: its row, its creator's grant (version 2, or version 1), the
-- log's create entry and manifest version 1, in one transaction.
CREATE FUNCTION api.create_vault(vault_id uuid, meta text, owner_grant json, log_entry json, manifest json)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vault  uuid := create_vault.vault_id;
    me     uuid := gate.current_user_id();
BEGIN
    INSERT INTO api.vaults (id, meta, revision) VALUES (vault, create_vault.meta, 1);
    INSERT INTO api.access_policies (vault_id, user_id, role, sealed_key, granted_by, signature, key_generation, grant_version, kem_id)
    VALUES (vault, me, 'owner', owner_grant ->> 'sealed_key', me, owner_grant ->> 'signature', 1,
            coalesce((owner_grant ->> 'grant_version')::smallint, 2), (owner_grant ->> 'kem_id')::integer);
    PERFORM api.commit_members(vault, json_build_array(log_entry), '[]'::json, '[]'::json, manifest, '{}'::uuid[]);
END
$$;
GRANT EXECUTE ON FUNCTION api.create_vault(uuid, text, json, json, json) TO app_user;

-- ---------------------------------------------------------------- reading

-- Every vault the caller may see, in one snapshot, with what opening it
-- needs: the caller's own grant, the membership log, the older keys and the
-- manifest. (Who else holds grants is not here: members learn it from the
-- log.) SECURITY INVOKER: row-level security decides what is returned.
CREATE FUNCTION api.vault_states()
RETURNS TABLE (id uuid, owner_id uuid, meta text, revision bigint, created_at timestamptz,
               "grant" json, log json, chain json, manifest json)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.id, v.owner_id, v.meta, v.revision, v.created_at,
           (SELECT json_build_object('user_id', p.user_id, 'role', p.role, 'sealed_key', p.sealed_key,
                                     'granted_by', p.granted_by, 'signature', p.signature, 'created_at', p.created_at,
                                     'key_generation', p.key_generation, 'grant_version', p.grant_version, 'kem_id', p.kem_id)
              FROM api.access_policies p WHERE p.vault_id = v.id AND p.user_id = gate.current_user_id()),
           coalesce((SELECT json_agg(json_build_object('seq', l.seq, 'entry', l.entry, 'signature', l.signature) ORDER BY l.seq)
                       FROM api.vault_log l WHERE l.vault_id = v.id), '[]'::json),
           coalesce((SELECT json_agg(json_build_object('generation', c.generation, 'wrapped', c.wrapped) ORDER BY c.generation)
                       FROM api.vault_key_chain c WHERE c.vault_id = v.id), '[]'::json),
           (SELECT json_build_object('version', m.version, 'manifest', m.manifest, 'signature', m.signature, 'signer_id', m.signer_id)
              FROM api.vault_manifests m WHERE m.vault_id = v.id)
      FROM api.vaults v
     ORDER BY v.created_at, v.id
$$;
GRANT EXECUTE ON FUNCTION api.vault_states() TO app_user;
