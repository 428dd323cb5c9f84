-- The caller of a PostgREST request, as every RLS policy sees it: the `sub`
-- claim of a JWT that PostgREST verified and gate.check_request() accepted.
-- Policies call it as (SELECT gate.current_user_id()) so it runs once per
-- statement, not once per row.
CREATE FUNCTION gate.current_user_id() RETURNS uuid
LANGUAGE sql STABLE
AS $$
    SELECT (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
$$;
GRANT EXECUTE ON FUNCTION gate.current_user_id() TO app_user;

-- Ends the request with HTTP 401 and a JSON body {code, message}.
-- 'PGRST' is PostgREST's SQLSTATE for a response the database dictates.
CREATE FUNCTION gate.refuse(code text, message text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE SQLSTATE 'PGRST' USING
        message = json_build_object('code', code, 'message', message, 'details', NULL, 'hint', NULL)::text,
        detail  = json_build_object(
            'status', 401,
            'headers', json_build_object('WWW-Authenticate', 'Bearer error="invalid_token"')
        )::text;
END
$$;

-- PostgREST's db-pre-request: runs before every request, after the JWT's
-- signature was checked and the role switched.
--
-- PostgREST 12 accepts a token without `aud` or `exp` and never looks at
-- `iss`; it also lets a valid token outlive a logout. This function closes
-- those gaps: a request that carries a token is refused unless the token names
-- our issuer and audience, has iat and exp no further apart than the policy
-- allows and not yet passed, runs as app_user, and belongs to a live session
-- of that very user. Revoking the session therefore ends its tokens at once.
--
-- SECURITY DEFINER because it reads auth.sessions, which PostgREST's roles may
-- not read; search_path is pinned so nothing the caller controls is resolved.
CREATE FUNCTION gate.check_request() RETURNS void
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
    IF NOT EXISTS (
        SELECT 1
          FROM auth.sessions s
         WHERE s.id = (claims ->> 'sid')::uuid
           AND s.user_id = (claims ->> 'sub')::uuid
           AND s.revoked_at IS NULL
           AND s.expires_at > now()
    ) THEN
        PERFORM gate.refuse('session_revoked', 'the session has ended; log in again');
    END IF;
END
$$;
-- authenticator is included so that a token claiming role "authenticator"
-- (which PostgREST lets through, as it is the session user) gets the same
-- clear refusal instead of a permission error.
GRANT USAGE ON SCHEMA gate TO authenticator;
GRANT EXECUTE ON FUNCTION gate.check_request() TO anon, app_user, authenticator;
