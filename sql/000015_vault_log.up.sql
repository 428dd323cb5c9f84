-- The membership log of each vault (docs/crypto.md §9).
--
-- Each entry is a message the client built and signed (add a member with a
-- role, change a role, remove, rotate the key, leave), naming the previous
-- entry's hash. Clients derive members only by replaying the log and
-- checking every signature; the server cannot make or change an entry
-- without breaking a signature. This migration makes the server keep the
-- log honest as far as it can without verifying signatures:
--
-- 1. The log is append-only: nobody updates or deletes an entry (the
--    entries go only with their vault).
-- 2. An entry's vault, sequence number, operation, subject, role and
--    signer are read from the signed bytes, never taken from the request;
--    seq must be the next one and the entry must name the previous entry's
--    hash, so two concurrent appends conflict (409) instead of forking.
-- 3. Row-level security enforces who may append what, as the replay does:
--    the signer must be the caller; the vault's creator creates; owners add,
--    change and remove anyone; admins only editors and viewers; owners and
--    admins rotate; any member leaves. The creator (the vault row's owner)
--    stays owner: it cannot be removed, change role or leave (it deletes
--    the vault instead).
-- 4. Members read the log and the published keys of everyone it names
--    (api.vault_member_keys), which replaying it needs.
-- 5. Admins may delete the grants of editors and viewers (removing them);
--    owners any grant; everybody their own.

CREATE TABLE api.vault_log (
    vault_id    uuid        NOT NULL REFERENCES api.vaults (id) ON DELETE CASCADE,
    seq         bigint      NOT NULL CHECK (seq >= 1),
    entry       text        NOT NULL CHECK (octet_length(entry) <= 1024),
    signature   text        NOT NULL CHECK (signature ~ '^[A-Za-z0-9+/]{86}==$'),
    -- Read from the entry by the trigger below, for the policies.
    op          smallint    NOT NULL CHECK (op BETWEEN 1 AND 6),
    subject_id  uuid        NOT NULL,
    signer_id   uuid        NOT NULL,
    role        text        CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vault_id, seq)
);
CREATE INDEX vault_log_subject_idx ON api.vault_log (subject_id);
ALTER TABLE api.vault_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.vault_log FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.vault_log FROM PUBLIC;
GRANT SELECT ON api.vault_log TO app_user;
GRANT INSERT (vault_id, seq, entry, signature) ON api.vault_log TO app_user;
CREATE POLICY vault_log_definer ON api.vault_log FOR SELECT TO authsvc USING (true);

-- The role of user in vault, for a caller who is a member of it (NULL
-- otherwise): 'owner' for the vault's creator, else the role of their
-- grant. SECURITY DEFINER to read other members' grants; it tells a member
-- nothing the log does not.
CREATE FUNCTION gate.member_role(vault uuid, member uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN gate.vault_role(vault) IS NULL THEN NULL
        WHEN EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = vault AND v.owner_id = member) THEN 'owner'
        ELSE (SELECT p.role FROM api.access_policies p WHERE p.vault_id = vault AND p.user_id = member)
    END
$$;
GRANT EXECUTE ON FUNCTION gate.member_role(uuid, uuid) TO app_user;

-- Whether the caller may append an entry of op about subject with role to
-- vault's log (the authority rules of docs/crypto.md §9, on the server's
-- view of the roles). SECURITY DEFINER to read the vault's creator and
-- the subject's role.
CREATE FUNCTION gate.may_append(vault uuid, op smallint, subject uuid, new_role text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me       uuid := gate.current_user_id();
    mine     text := gate.vault_role(vault);
    theirs   text := gate.member_role(vault, subject);
    creator  uuid := (SELECT v.owner_id FROM api.vaults v WHERE v.id = vault);
BEGIN
    IF me IS NULL OR creator IS NULL THEN
        RETURN false;
    END IF;
    CASE op
    WHEN 1 THEN  -- create: the vault's creator, about itself, as owner
        RETURN subject = me AND new_role = 'owner' AND creator = me;
    WHEN 2 THEN  -- add
        RETURN subject <> creator
           AND (mine = 'owner' OR (mine = 'admin' AND new_role IN ('editor', 'viewer')));
    WHEN 3 THEN  -- change_role
        RETURN subject <> creator AND theirs IS NOT NULL
           AND (mine = 'owner' OR (mine = 'admin' AND new_role IN ('editor', 'viewer') AND theirs IN ('editor', 'viewer')));
    WHEN 4 THEN  -- remove
        RETURN subject <> creator AND theirs IS NOT NULL
           AND (mine = 'owner' OR (mine = 'admin' AND theirs IN ('editor', 'viewer')));
    WHEN 5 THEN  -- rotate
        RETURN subject = me AND mine IN ('owner', 'admin');
    WHEN 6 THEN  -- leave
        RETURN subject = me AND mine IS NOT NULL AND me <> creator;
    ELSE
        RETURN false;
    END CASE;
END
$$;
GRANT EXECUTE ON FUNCTION gate.may_append(uuid, smallint, uuid, text) TO app_user;

CREATE POLICY vault_log_member_select ON api.vault_log FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
CREATE POLICY vault_log_append ON api.vault_log FOR INSERT TO app_user
    WITH CHECK (signer_id = (SELECT gate.current_user_id()) AND gate.may_append(vault_id, op, subject_id, role));

-- Reads an entry's fields from its signed bytes (docs/crypto.md §9):
--   "zsm v1 vault-log" 0x00 | vault_id 16 | seq 8 | prev_hash 32 | op 1 | subject 16
--   | len 1 | role len | fingerprint 32 | generation 8 | commitment 32 | signer 16 | time 8
-- and checks that the entry is the next one: seq = the last seq + 1, and
-- prev_hash = SHA-256(previous message || previous signature) (32 zero
-- bytes at seq 1). Out-of-turn appends are 409 (the client refetches the
-- log and retries); malformed entries 400. SECURITY DEFINER to read the
-- previous entry whoever asks.
CREATE FUNCTION gate.vault_log_entry() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m     bytea;
    n     integer;
    last  record;
    prev  bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
BEGIN
    BEGIN
        m := decode(NEW.entry, 'base64');
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'the log entry is not base64' USING ERRCODE = '22023';
    END;
    IF octet_length(m) < 187 OR substring(m FROM 1 FOR 17) <> convert_to('zsm v1 vault-log', 'UTF8') || '\x00'::bytea THEN
        RAISE EXCEPTION 'not a membership log entry' USING ERRCODE = '22023';
    END IF;
    n := get_byte(m, 90);
    IF octet_length(m) <> 187 + n THEN
        RAISE EXCEPTION 'the log entry has the wrong length' USING ERRCODE = '22023';
    END IF;
    IF substring(m FROM 18 FOR 16) <> uuid_send(NEW.vault_id) OR substring(m FROM 34 FOR 8) <> int8send(NEW.seq) THEN
        RAISE EXCEPTION 'the log entry names another vault or seq than its row' USING ERRCODE = '22023';
    END IF;
    NEW.op := get_byte(m, 73);
    IF NEW.op NOT BETWEEN 1 AND 6 THEN
        RAISE EXCEPTION 'unknown log operation %', NEW.op USING ERRCODE = '22023';
    END IF;
    NEW.subject_id := encode(substring(m FROM 75 FOR 16), 'hex')::uuid;
    NEW.role := nullif(convert_from(substring(m FROM 92 FOR n), 'UTF8'), '');
    NEW.signer_id := encode(substring(m FROM 164 + n FOR 16), 'hex')::uuid;
    NEW.created_at := now();

    SELECT l.seq, l.entry, l.signature INTO last
      FROM api.vault_log l WHERE l.vault_id = NEW.vault_id ORDER BY l.seq DESC LIMIT 1;
    IF FOUND THEN
        prev := sha256(decode(last.entry, 'base64') || decode(last.signature, 'base64'));
    END IF;
    IF NEW.seq <> coalesce(last.seq, 0) + 1 OR substring(m FROM 42 FOR 32) <> prev THEN
        RAISE EXCEPTION 'the membership log moved on: entry % must follow entry % (fetch the log again and retry)',
            NEW.seq, coalesce(last.seq, 0) USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER vault_log_entry BEFORE INSERT ON api.vault_log
    FOR EACH ROW EXECUTE FUNCTION gate.vault_log_entry();

-- Append-only, for everybody (superusers included): entries go only with
-- their vault (a cascaded delete, once the vault row is gone).
CREATE FUNCTION gate.vault_log_append_only() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = OLD.vault_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the membership log is append-only: % is not allowed', TG_OP USING ERRCODE = '42501';
END
$$;
CREATE TRIGGER vault_log_append_only BEFORE UPDATE OR DELETE ON api.vault_log
    FOR EACH ROW EXECUTE FUNCTION gate.vault_log_append_only();

-- ---------------------------------------------------------------- the keys a replay needs

-- The published keys, with identities, of everyone the caller's vaults'
-- logs and grants name (members, former members, inviters, invitees) and
-- of their creators: replaying a log checks each signer's key record and
-- fingerprint (which covers the identity). SECURITY DEFINER to read
-- auth.users; it starts from the caller's own vaults only.
CREATE FUNCTION gate.vault_member_keys()
RETURNS TABLE (user_id uuid, identity text, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH mine AS (SELECT gate.member_vaults() AS vault_id),
    named AS (
        SELECT l.subject_id AS u FROM api.vault_log l WHERE l.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT l.signer_id FROM api.vault_log l WHERE l.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT p.user_id FROM api.access_policies p WHERE p.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT p.granted_by FROM api.access_policies p WHERE p.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT v.owner_id FROM api.vaults v WHERE v.id IN (SELECT vault_id FROM mine)
    )
    SELECT u.id, u.identity, k.x25519_public, k.ed25519_public, k.key_record_version, k.key_record_signature, k.xwing_public
      FROM named JOIN auth.users u ON u.id = named.u JOIN api.public_keys k ON k.user_id = u.id
     ORDER BY u.id
$$;
GRANT EXECUTE ON FUNCTION gate.vault_member_keys() TO app_user;

CREATE FUNCTION api.vault_member_keys()
RETURNS TABLE (user_id uuid, identity text, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM gate.vault_member_keys() $$;
GRANT EXECUTE ON FUNCTION api.vault_member_keys() TO app_user;

-- ---------------------------------------------------------------- removing members

-- 000005's delete policy (oneself, or an owner) plus: an admin removes
-- editors and viewers. Nobody but an owner removes an owner or an admin.
DROP POLICY access_policies_delete ON api.access_policies;
CREATE POLICY access_policies_delete ON api.access_policies FOR DELETE TO app_user
    USING (user_id = (SELECT gate.current_user_id())
           OR vault_id IN (SELECT gate.member_vaults(ARRAY['owner']))
           OR (role IN ('editor', 'viewer') AND vault_id IN (SELECT gate.member_vaults(ARRAY['admin']))));
