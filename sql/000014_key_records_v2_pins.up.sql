-- Trusting other people's keys: key records version 2 and pins.
--
-- 1. An account publishes its X-Wing key (ML-KEM-768 + X25519, the hybrid
--    key of key bundle version 2) in a version 2 key record, signed by its
--    own Ed25519 key like version 1 (docs/crypto.md §3). New accounts
--    publish version 2 at sign-up; older ones upgrade at their next login
--    (POST /auth/v1/keys/upgrade), which replaces the version 1 record.
--    The X25519 and Ed25519 keys of a row never change, a record never goes
--    back from version 2 to 1, and a published X-Wing key never changes.
-- 2. Each user keeps one row of pins (docs/crypto.md §7): the identities
--    whose keys the user verified, sealed under the account key so that
--    only the user's own devices can read or write them (a server cannot
--    plant a pin). Nobody else can see that the row exists.

-- ---------------------------------------------------------------- key records version 2

ALTER TABLE api.public_keys
    DROP CONSTRAINT public_keys_key_record_version_check,
    ADD CONSTRAINT public_keys_key_record_version_check CHECK (key_record_version IN (1, 2)),
    -- 1216 bytes in base64 (1624 characters, one byte in the last group).
    ADD COLUMN xwing_public text CHECK (octet_length(xwing_public) = 1624 AND xwing_public ~ '^[A-Za-z0-9+/]+==$'),
    ADD CONSTRAINT public_keys_xwing_unique UNIQUE (xwing_public),
    -- A version 2 record has an X-Wing key, and only a version 2 record.
    ADD CONSTRAINT public_keys_xwing_version
        CHECK ((xwing_public IS NOT NULL) = (key_record_version IS NOT DISTINCT FROM 2));

-- authsvc replaces a row's record (none, or version 1) by a version 2
-- record at the upgrade; a version 2 row is never changed again.
CREATE POLICY public_keys_upgrade ON api.public_keys FOR UPDATE TO authsvc
    USING (key_record_version IS DISTINCT FROM 2) WITH CHECK (key_record_version = 2);

-- What an update of a published row may change, whoever makes it: the
-- account's X25519 and Ed25519 keys and its user id stay, and an X-Wing key
-- once published stays. (That a record only moves forward, none to 1 to 2,
-- is what authsvc's two update policies allow.)
CREATE FUNCTION gate.public_keys_stay() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.user_id <> OLD.user_id OR NEW.x25519_public <> OLD.x25519_public
       OR NEW.ed25519_public <> OLD.ed25519_public OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'published public keys never change' USING ERRCODE = '42501';
    END IF;
    IF OLD.xwing_public IS NOT NULL AND NEW.xwing_public IS DISTINCT FROM OLD.xwing_public THEN
        RAISE EXCEPTION 'a published X-Wing key never changes' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER public_keys_stay BEFORE UPDATE ON api.public_keys
    FOR EACH ROW EXECUTE FUNCTION gate.public_keys_stay();

-- The exact lookup of 000010 answers the X-Wing key too.
DROP FUNCTION api.lookup_identity(text);
DROP FUNCTION gate.lookup_identity(text);
CREATE FUNCTION gate.lookup_identity(ident text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
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
        SELECT u.id, k.x25519_public, k.ed25519_public, k.key_record_version, k.key_record_signature, k.xwing_public
          FROM auth.users u JOIN api.public_keys k ON k.user_id = u.id
         WHERE u.identity = ident;
END
$$;
REVOKE EXECUTE ON FUNCTION gate.lookup_identity(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gate.lookup_identity(text) TO app_user;

CREATE FUNCTION api.lookup_identity(identity text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM gate.lookup_identity(lookup_identity.identity) $$;
REVOKE EXECUTE ON FUNCTION api.lookup_identity(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.lookup_identity(text) TO app_user;

-- ---------------------------------------------------------------- pins

-- One row per user: the pin set, envelope type 7 under the account key
-- (object id the user id, revision the row's revision). The server sees
-- its size and when it changed, nothing of what it says.
CREATE TABLE api.pins (
    user_id     uuid        PRIMARY KEY DEFAULT gate.current_user_id() REFERENCES auth.users (id) ON DELETE CASCADE,
    revision    bigint      NOT NULL CHECK (revision >= 1),
    ciphertext  text        NOT NULL CHECK (octet_length(ciphertext) <= 1000000),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE api.pins ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.pins FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.pins FROM PUBLIC;
-- The owner alone reads and writes the row; it is never deleted through
-- the API (it goes with the account).
GRANT SELECT ON api.pins TO app_user;
GRANT INSERT (revision, ciphertext) ON api.pins TO app_user;
GRANT UPDATE (revision, ciphertext) ON api.pins TO app_user;
CREATE POLICY pins_own_select ON api.pins FOR SELECT TO app_user
    USING (user_id = (SELECT gate.current_user_id()));
CREATE POLICY pins_own_insert ON api.pins FOR INSERT TO app_user
    WITH CHECK (user_id = (SELECT gate.current_user_id()));
CREATE POLICY pins_own_update ON api.pins FOR UPDATE TO app_user
    USING (user_id = (SELECT gate.current_user_id()))
    WITH CHECK (user_id = (SELECT gate.current_user_id()));

-- The revision starts at 1 and rises by one per write, so two devices that
-- write at once conflict (the client updates WHERE revision = the one it
-- read, and merges and retries when nothing matched).
CREATE FUNCTION gate.pins_revision() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.revision <> 1 THEN
        RAISE EXCEPTION 'a new pin set starts at revision 1' USING ERRCODE = '22023';
    ELSIF TG_OP = 'UPDATE' AND NEW.revision <> OLD.revision + 1 THEN
        RAISE EXCEPTION 'revision must be % (one more than the current)', OLD.revision + 1 USING ERRCODE = '22023';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER pins_revision BEFORE INSERT OR UPDATE ON api.pins
    FOR EACH ROW EXECUTE FUNCTION gate.pins_revision();
