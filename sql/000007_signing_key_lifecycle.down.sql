DROP INDEX IF EXISTS auth.signing_keys_one_next;
DELETE FROM auth.signing_keys WHERE state IN ('removed', 'next');
ALTER TABLE auth.signing_keys DROP COLUMN IF EXISTS published_at, DROP COLUMN IF EXISTS removed_at, DROP COLUMN IF EXISTS revoked;
ALTER TABLE auth.signing_keys DROP CONSTRAINT signing_keys_state_check;
ALTER TABLE auth.signing_keys ADD CONSTRAINT signing_keys_state_check CHECK (state IN ('next', 'current', 'retired'));
