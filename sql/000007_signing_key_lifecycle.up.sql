-- Signing keys move through next (published, not signing) → current
-- (signing) → retired (published until every token it signed has expired)
-- → removed (kept as a record, published nowhere). An emergency revoke
-- moves a key straight to removed.
ALTER TABLE auth.signing_keys DROP CONSTRAINT signing_keys_state_check;
ALTER TABLE auth.signing_keys ADD CONSTRAINT signing_keys_state_check
    CHECK (state IN ('next', 'current', 'retired', 'removed'));
ALTER TABLE auth.signing_keys
    ADD COLUMN published_at timestamptz,
    ADD COLUMN removed_at   timestamptz,
    ADD COLUMN revoked      boolean NOT NULL DEFAULT false;
UPDATE auth.signing_keys SET published_at = created_at;
-- At most one key waits as next.
CREATE UNIQUE INDEX signing_keys_one_next ON auth.signing_keys (state) WHERE state = 'next';
