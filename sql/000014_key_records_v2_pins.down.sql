DROP TABLE api.pins;
DROP FUNCTION gate.pins_revision();

DROP FUNCTION api.lookup_identity(text);
DROP FUNCTION gate.lookup_identity(text);
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
REVOKE EXECUTE ON FUNCTION gate.lookup_identity(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gate.lookup_identity(text) TO app_user;
CREATE FUNCTION api.lookup_identity(identity text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM gate.lookup_identity(lookup_identity.identity) $$;
REVOKE EXECUTE ON FUNCTION api.lookup_identity(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.lookup_identity(text) TO app_user;

DROP TRIGGER public_keys_stay ON api.public_keys;
DROP FUNCTION gate.public_keys_stay();
DROP POLICY public_keys_upgrade ON api.public_keys;
-- Version 2 records go; their accounts keep their version 1 keys (the
-- record is published again at their next login by an older client).
ALTER TABLE api.public_keys
    DROP CONSTRAINT public_keys_xwing_version,
    DROP CONSTRAINT public_keys_xwing_unique,
    DROP CONSTRAINT public_keys_key_record_version_check;
ALTER TABLE api.public_keys NO FORCE ROW LEVEL SECURITY;
UPDATE api.public_keys SET key_record_version = NULL, key_record_signature = NULL WHERE key_record_version = 2;
ALTER TABLE api.public_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE api.public_keys
    DROP COLUMN xwing_public,
    ADD CONSTRAINT public_keys_key_record_version_check CHECK (key_record_version = 1);
