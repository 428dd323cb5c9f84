DROP FUNCTION IF EXISTS api.lookup_identity(text);
DROP FUNCTION IF EXISTS gate.lookup_identity(text);
DROP FUNCTION IF EXISTS gate.count_rate(text, uuid, integer);
DROP TABLE IF EXISTS auth.rate_counters;
DROP TABLE IF EXISTS auth.data_limits;

DROP POLICY IF EXISTS public_keys_own_and_peers ON api.public_keys;
DROP FUNCTION IF EXISTS gate.vault_peers();
CREATE POLICY public_keys_read ON api.public_keys FOR SELECT TO app_user USING (true);

ALTER TABLE api.public_keys
    DROP CONSTRAINT IF EXISTS public_keys_ed25519_unique,
    DROP CONSTRAINT IF EXISTS public_keys_x25519_unique;
DROP POLICY IF EXISTS public_keys_late_record ON api.public_keys;
DROP POLICY IF EXISTS public_keys_definer ON api.public_keys;
ALTER TABLE api.public_keys
    DROP CONSTRAINT IF EXISTS public_keys_record_complete,
    DROP COLUMN IF EXISTS key_record_signature,
    DROP COLUMN IF EXISTS key_record_version;
