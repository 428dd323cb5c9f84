-- Session lifetimes and the audit log.
--
-- 1. Idle lifetime. A session not used (logged into or refreshed, which is
--    what sets auth.sessions.last_used_at) for longer than
--    auth.token_policy.idle_ttl_seconds is dead, like one past its absolute
--    expires_at: authsvc refuses its refresh token and gate.check_request()
--    its access tokens. authsvc writes the value (AUTHSVC_SESSION_IDLE_TTL)
--    when it publishes its JWKS; until then the default holds.
ALTER TABLE auth.token_policy ADD COLUMN idle_ttl_seconds integer NOT NULL DEFAULT 604800
    CHECK (idle_ttl_seconds BETWEEN 60 AND 31536000);

-- The same function as in 000003, plus the idle check.
CREATE OR REPLACE FUNCTION gate.check_request() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw     text := current_setting('request.jwt.claims', true);
    claims  jsonb;
    pol     auth.token_policy%ROWTYPE;
    aud     jsonb;
    uuid_re constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
BEGIN
    IF raw IS NULL OR raw = '' THEN
        RETURN;
    END IF;
    claims := raw::jsonb;
    -- No token was presented: PostgREST runs the request as anon with exactly
    -- this claim set. anon holds no privilege on any table.
    IF claims = '{"role": "anon"}'::jsonb THEN
        RETURN;
    END IF;

    SELECT * INTO pol FROM auth.token_policy;
    IF NOT FOUND THEN
        PERFORM gate.refuse('invalid_token', 'token validation is not configured');
    END IF;

    IF jsonb_typeof(claims -> 'iss') IS DISTINCT FROM 'string' OR claims ->> 'iss' <> pol.issuer THEN
        PERFORM gate.refuse('invalid_token', 'token issuer is not accepted');
    END IF;

    aud := claims -> 'aud';
    IF aud IS NULL OR NOT (
        (jsonb_typeof(aud) = 'string' AND aud #>> '{}' = pol.audience) OR
        (jsonb_typeof(aud) = 'array' AND aud ? pol.audience)
    ) THEN
        PERFORM gate.refuse('invalid_token', 'token audience is not accepted');
    END IF;

    IF jsonb_typeof(claims -> 'exp') IS DISTINCT FROM 'number'
       OR jsonb_typeof(claims -> 'iat') IS DISTINCT FROM 'number' THEN
        PERFORM gate.refuse('invalid_token', 'token must carry iat and exp');
    END IF;
    IF (claims ->> 'exp')::numeric - (claims ->> 'iat')::numeric > pol.max_ttl_seconds THEN
        PERFORM gate.refuse('invalid_token', 'token lifetime is longer than allowed');
    END IF;
    IF (claims ->> 'exp')::numeric <= extract(epoch FROM clock_timestamp()) THEN
        PERFORM gate.refuse('token_expired', 'token has expired');
    END IF;

    IF claims ->> 'role' IS DISTINCT FROM 'app_user' THEN
        PERFORM gate.refuse('invalid_token', 'token role is not accepted');
    END IF;

    IF coalesce(claims ->> 'sub', '') !~ uuid_re OR coalesce(claims ->> 'sid', '') !~ uuid_re THEN
        PERFORM gate.refuse('invalid_token', 'token subject or session is malformed');
    END IF;

    -- The session must be alive and belong to the token's subject: logout,
    -- refresh-token reuse and revocation take effect on the next request.
    -- Alive also means used (logged into or refreshed) within the idle
    -- lifetime of the policy.
    IF NOT EXISTS (
        SELECT 1
          FROM auth.sessions s
         WHERE s.id = (claims ->> 'sid')::uuid
           AND s.user_id = (claims ->> 'sub')::uuid
           AND s.revoked_at IS NULL
           AND s.expires_at > now()
           AND s.last_used_at > now() - make_interval(secs => pol.idle_ttl_seconds)
    ) THEN
        PERFORM gate.refuse('session_revoked', 'the session has ended; log in again');
    END IF;
END
$$;

-- 2. The audit log: every authentication event (sign-up, login and failed
--    login, refresh, refresh-token reuse, logout, session revocation,
--    password change, signing-key changes), append-only.
--
-- It lives in schema api so that users read their own events through
-- PostgREST (RLS: their own rows, nothing else, SELECT only). authsvc writes
-- it in the same transaction as the change it records, and operators read
-- it with `authsvc audit`. Rows never hold a token, a password derivative or
-- an SRP value; detail is a small object of reasons and counts. A failed
-- login for an identity nobody registered has no user id (so no user can
-- read it) and names the identity in detail for operators.
--
-- No foreign keys: the record outlives what it describes.
CREATE TABLE api.audit_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id      uuid,
    session_id   uuid,
    event        text        NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]{1,62}$'),
    client_addr  inet,
    request_id   text        CHECK (request_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb
                             CHECK (jsonb_typeof(detail) = 'object' AND octet_length(detail::text) <= 2048)
);
CREATE INDEX audit_events_user_id_idx ON api.audit_events (user_id, id);
CREATE INDEX audit_events_at_idx ON api.audit_events (at);

ALTER TABLE api.audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.audit_events FORCE ROW LEVEL SECURITY;
-- Users: SELECT their own rows, nothing else.
REVOKE ALL ON api.audit_events FROM PUBLIC;
GRANT SELECT ON api.audit_events TO app_user;
CREATE POLICY audit_events_own ON api.audit_events FOR SELECT TO app_user
    USING (user_id = (SELECT gate.current_user_id()));
-- authsvc (the owner, bound by FORCE): appends, and reads for operators.
-- It gives up its own UPDATE, DELETE and TRUNCATE privileges; the trigger
-- below refuses those to everybody else too, superusers included.
REVOKE UPDATE, DELETE, TRUNCATE ON api.audit_events FROM authsvc;
CREATE POLICY audit_events_record ON api.audit_events FOR INSERT TO authsvc WITH CHECK (true);
CREATE POLICY audit_events_operator ON api.audit_events FOR SELECT TO authsvc USING (true);

-- Refuses UPDATE, DELETE and TRUNCATE unless the transaction set
-- zsm.allow_audit_rewrite = 'on', which only a migration does (and which
-- still needs a privilege nobody holds outside a migration).
CREATE FUNCTION auth.audit_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('zsm.allow_audit_rewrite', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON api.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION auth.audit_append_only();
