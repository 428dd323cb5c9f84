-- Signed key records and exact key lookup.
--
-- 1. A sign-up proves that it holds the private keys it publishes: the
--    client signs a key record (docs/crypto.md §3: user id, identity and
--    both public keys, signed with the account's Ed25519 key), authsvc
--    verifies it before it stores anything, and the record is published
--    next to the keys so that every client can check it again. Accounts
--    made before records existed publish theirs at their next login
--    (POST /auth/v1/keys/record, verified the same way); until then their
--    row has no record.
-- 2. A public key belongs to one account only.
-- 3. Nobody lists all users any more: a user reads the public keys of
--    their own account and of the people they share a vault with, and
--    looks anyone else up by one exact identity (api.lookup_identity).

-- ---------------------------------------------------------------- the record

ALTER TABLE api.public_keys
    ADD COLUMN key_record_version   smallint CHECK (key_record_version = 1),
    ADD COLUMN key_record_signature text     CHECK (key_record_signature ~ '^[A-Za-z0-9+/]{86}==$'),
    ADD CONSTRAINT public_keys_record_complete
        CHECK ((key_record_version IS NULL) = (key_record_signature IS NULL));

-- authsvc reads the published keys (inside the SECURITY DEFINER helpers
-- below, and to check a late record) and adds a record to a row that has
-- none; nothing else about a row ever changes.
CREATE POLICY public_keys_definer ON api.public_keys FOR SELECT TO authsvc USING (true);
CREATE POLICY public_keys_late_record ON api.public_keys FOR UPDATE TO authsvc
    USING (key_record_signature IS NULL) WITH CHECK (key_record_signature IS NOT NULL);

-- ---------------------------------------------------------------- one owner per key

-- Before this migration a sign-up could publish another account's keys.
-- The first account to publish a key keeps it; later copies lose their row
-- (their owners cannot have signed for keys they do not hold, and the
-- account's own bundle cannot open them either). FORCE RLS is lifted for
-- this one statement: the migration, not a caller, decides.
ALTER TABLE api.public_keys NO FORCE ROW LEVEL SECURITY;
DELETE FROM api.public_keys p
 WHERE EXISTS (SELECT 1 FROM api.public_keys q
                WHERE (q.x25519_public = p.x25519_public OR q.ed25519_public = p.ed25519_public)
                  AND (q.created_at, q.user_id) < (p.created_at, p.user_id));
ALTER TABLE api.public_keys FORCE ROW LEVEL SECURITY;

ALTER TABLE api.public_keys
    ADD CONSTRAINT public_keys_x25519_unique UNIQUE (x25519_public),
    ADD CONSTRAINT public_keys_ed25519_unique UNIQUE (ed25519_public);

-- ---------------------------------------------------------------- who reads whose keys

-- The users the caller shares a vault with: every member and the owner of
-- each vault the caller belongs to (a pending invitation included, so that
-- the invitee can check the inviter's signature), and whoever granted the
-- caller a membership. SECURITY DEFINER so that the policy below can see
-- other members' grants; it starts from the caller's own memberships and
-- grants only, so it names nobody the caller has no vault in common with.
CREATE FUNCTION gate.vault_peers() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.user_id FROM api.access_policies p WHERE p.vault_id IN (SELECT gate.member_vaults())
    UNION
    SELECT v.owner_id FROM api.vaults v WHERE v.id IN (SELECT gate.member_vaults())
    UNION
    SELECT p.granted_by FROM api.access_policies p WHERE p.user_id = gate.current_user_id()
$$;
GRANT EXECUTE ON FUNCTION gate.vault_peers() TO app_user;

DROP POLICY public_keys_read ON api.public_keys;
CREATE POLICY public_keys_own_and_peers ON api.public_keys FOR SELECT TO app_user
    USING (user_id = (SELECT gate.current_user_id()) OR user_id IN (SELECT gate.vault_peers()));

-- ---------------------------------------------------------------- per-user limits in the database

-- Limits on what one user may do through PostgREST, counted here because
-- PostgREST has no rate limiter of its own. The single row holds the
-- operator's values; change them with UPDATE (docs/security.md).
CREATE TABLE auth.data_limits (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    lookups_per_hour  integer NOT NULL DEFAULT 300 CHECK (lookups_per_hour BETWEEN 1 AND 1000000)
);
INSERT INTO auth.data_limits DEFAULT VALUES;

-- Fixed one-hour windows per (what, user). Rows of past windows are
-- deleted as new windows start.
CREATE TABLE auth.rate_counters (
    bucket        text        NOT NULL CHECK (bucket ~ '^[a-z_]{1,32}$'),
    subject       uuid        NOT NULL,
    window_start  timestamptz NOT NULL,
    n             integer     NOT NULL,
    PRIMARY KEY (bucket, subject, window_start)
);

-- Counts one action of user `who` of kind `what` and ends the request with
-- 429 rate_limited (and Retry-After: the end of the window) when that
-- makes more than max_per_hour in the current hour. The count is part of
-- the caller's transaction: a refused or failed request counts nothing.
CREATE FUNCTION gate.count_rate(what text, who uuid, max_per_hour integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    win  timestamptz := date_trunc('hour', clock_timestamp());
    cnt  integer;
BEGIN
    INSERT INTO auth.rate_counters AS r (bucket, subject, window_start, n)
    VALUES (what, who, win, 1)
    ON CONFLICT (bucket, subject, window_start) DO UPDATE SET n = r.n + 1
    RETURNING r.n INTO cnt;
    IF cnt = 1 THEN
        DELETE FROM auth.rate_counters r
         WHERE r.bucket = what AND r.subject = who AND r.window_start < win;
    END IF;
    IF cnt > max_per_hour THEN
        RAISE SQLSTATE 'PGRST' USING
            message = json_build_object('code', 'rate_limited',
                                        'message', 'too many requests of this kind; wait before trying again',
                                        'details', NULL, 'hint', NULL)::text,
            detail  = json_build_object('status', 429, 'headers', json_build_object(
                          'Retry-After', ceil(extract(epoch FROM win + interval '1 hour' - clock_timestamp()))::int::text))::text;
    END IF;
END
$$;
-- Only the SECURITY DEFINER functions of this schema call it.

-- ---------------------------------------------------------------- exact lookup

-- One identity's user id, public keys and key record, or nothing. The
-- identity must be given exactly as stored (normalized by the client,
-- srpgroup.NormalizeIdentity): there is no prefix, pattern or case-insensitive
-- match, so nothing can be listed, only asked for one name at a time, and
-- each user may ask lookups_per_hour times an hour. What it returns is what
-- sign-up already tells anyone who tries the identity, plus the public keys
-- the account published for exactly this purpose.
CREATE FUNCTION gate.lookup_identity(ident text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me uuid := gate.current_user_id();
BEGIN
    IF me IS NULL THEN
        RAISE EXCEPTION 'sign in to look up an identity' USING ERRCODE = '42501';
    END IF;
    PERFORM gate.count_rate('lookup', me, (SELECT l.lookups_per_hour FROM auth.data_limits l));
    RETURN QUERY
        SELECT u.id, k.x25519_public, k.ed25519_public, k.key_record_version, k.key_record_signature
          FROM auth.users u JOIN api.public_keys k ON k.user_id = u.id
         WHERE u.identity = ident;
END
$$;
GRANT EXECUTE ON FUNCTION gate.lookup_identity(text) TO app_user;

-- The door in the exposed schema (SECURITY INVOKER). Call it with POST: it
-- counts, and PostgREST runs GET requests read-only.
CREATE FUNCTION api.lookup_identity(identity text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM gate.lookup_identity(lookup_identity.identity) $$;
GRANT EXECUTE ON FUNCTION api.lookup_identity(text) TO app_user;
