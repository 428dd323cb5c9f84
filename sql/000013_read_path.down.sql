-- gate.check_request() as 000009 made it, and the vaults read policy of 000005.
CREATE OR REPLACE FUNCTION gate.check_request() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw     text := current_setting('request.jwt.claims', true);
    headers text := nullif(current_setting('request.headers', true), '');
    claims  jsonb;
    pol     auth.token_policy%ROWTYPE;
    aud     jsonb;
    uuid_re constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
BEGIN
    -- Planned and estimated counts come from the planner's statistics,
    -- gathered over every row of a table, not only those the caller may see:
    -- `HEAD /audit_events?user_id=eq.<someone else>` with such a count tells
    -- how many events another user has. Refused for every request, method
    -- and path (tables, views, RPC), with or without a token. Every spelling
    -- counts: case, spaces and quotes are removed before looking, and a
    -- repeated preference is still one. PostgREST puts only the last of
    -- several Prefer header lines here, so the gateway forwards exactly one
    -- (nginx: proxy_set_header Prefer $http_prefer) and PostgREST is never
    -- reachable except through it.
    IF headers IS NOT NULL
       AND regexp_replace(lower(coalesce(headers::json ->> 'prefer', '')), '[[:space:]"'']', '', 'g')
           ~ 'count=(planned|estimated)' THEN
        PERFORM gate.refuse_request(400, 'count_not_allowed',
            'planned and estimated counts are not available; use Prefer: count=exact');
    END IF;

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

ALTER POLICY vaults_member_select ON api.vaults
    USING (owner_id = (SELECT gate.current_user_id()) OR id IN (SELECT gate.member_vaults()));
DROP FUNCTION IF EXISTS gate.shared_vault_ids();
