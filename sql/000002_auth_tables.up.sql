-- authsvc's tables. Only authsvc (the owner) reads or writes them; the single
-- door PostgREST has into this schema is gate.check_request(), below.

CREATE TABLE auth.users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The normalized identity (NFKC, case-folded, trimmed). go-srp hashes it
    -- unsalted into every proof, so client and server must agree on it byte
    -- for byte.
    identity      text        NOT NULL UNIQUE
                              CHECK (octet_length(identity) BETWEEN 3 AND 254),
    -- SRP-6a registration data computed by the client. The group and hash are
    -- pinned in authsvc's code and never stored: a stored string cannot choose
    -- them.
    srp_salt      bytea       NOT NULL CHECK (octet_length(srp_salt) BETWEEN 16 AND 512),
    srp_verifier  bytea       NOT NULL CHECK (octet_length(srp_verifier) BETWEEN 1 AND 384),
    -- The client's password KDF parameters (algorithm, salt, cost). Public by
    -- design: the client needs them before it can prove anything.
    kdf           jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auth.sessions (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    -- Absolute end of the session: no refresh extends it.
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (revoked_reason IN ('logout', 'refresh_token_reuse', 'revoked_by_user', 'password_change', 'expired')),
    client_addr     inet,
    user_agent      text CHECK (octet_length(user_agent) <= 512)
);
CREATE INDEX sessions_user_id_idx ON auth.sessions (user_id);

-- Refresh tokens are opaque random strings; only their SHA-256 is stored, so
-- a copy of this table cannot be replayed. A row is single use: used_at is set
-- when it is exchanged, and presenting a used token again revokes its session.
CREATE TABLE auth.refresh_tokens (
    token_hash  bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id  uuid        NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON auth.refresh_tokens (session_id);

-- JWT signing keys. The private half is sealed with the operator's key
-- encryption key before it reaches this table; the public half is what the
-- JWKS publishes.
CREATE TABLE auth.signing_keys (
    kid             text        PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{8,64}$'),
    algorithm       text        NOT NULL CHECK (algorithm = 'EdDSA'),
    state           text        NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    public_key      bytea       NOT NULL CHECK (octet_length(public_key) = 32),
    private_sealed  bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    retired_at      timestamptz
);
-- At most one key signs at any time.
CREATE UNIQUE INDEX signing_keys_one_current ON auth.signing_keys (state) WHERE state = 'current';

-- What a valid access token must say. authsvc writes the single row when it
-- starts, in the same transaction as the JWKS it pushes to PostgREST, so the
-- pre-request check and the keys always agree.
CREATE TABLE auth.token_policy (
    singleton        boolean  PRIMARY KEY DEFAULT true CHECK (singleton),
    issuer           text     NOT NULL,
    audience         text     NOT NULL,
    max_ttl_seconds  integer  NOT NULL CHECK (max_ttl_seconds BETWEEN 60 AND 900)
);

-- Publishes the JWKS to every PostgREST instance on this database and records
-- the token policy gate.check_request() enforces, in one transaction: the new
-- keys, the NOTIFY and the policy commit together or not at all.
--
-- ALTER ROLE … SET pgrst.jwt_secret needs the SET privilege on that parameter
-- (GRANT SET ON PARAMETER pgrst.jwt_secret TO authsvc, done at bootstrap).
-- authsvc validates the JWKS byte for byte before calling this: PostgREST 12
-- silently uses a JWKS it cannot parse as an HMAC secret, which would let
-- anybody who read the public JWKS sign tokens.
CREATE FUNCTION auth.publish_jwks(jwks text, issuer text, audience text, max_ttl_seconds integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER ROLE authenticator SET pgrst.jwt_secret = %L', jwks);
    INSERT INTO auth.token_policy (singleton, issuer, audience, max_ttl_seconds)
    VALUES (true, issuer, audience, max_ttl_seconds)
    ON CONFLICT (singleton) DO UPDATE
        SET issuer = EXCLUDED.issuer, audience = EXCLUDED.audience, max_ttl_seconds = EXCLUDED.max_ttl_seconds;
    PERFORM pg_notify('pgrst', 'reload config');
END
$$;
