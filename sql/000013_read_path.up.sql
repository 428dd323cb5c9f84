-- The authenticated read path, made cheaper without weakening it, and the
-- signing key checked by the gate:
--
-- 1. gate.check_request() looks up the token policy, the token's signing key
--    and the session in one statement (it made two), and refuses a token
--    whose signing key is no longer published, whatever PostgREST still
--    accepts (its JWT cache, or a configuration reload it has not done yet).
--    The count check parses the request headers only when they hold a
--    Prefer header.
-- 2. The vaults read policy matches shared vaults by id against an array
--    (an index condition) instead of a hashed set-returning subquery: the
--    same rows, and a plan that can use the indexes on owner_id and id.

-- The vaults shared with the caller through an access policy, as one array,
-- or NULL when there are none (then `id = ANY (NULL)` is decided per row
-- without looking into an array). SECURITY DEFINER so that the vaults policy
-- can read access_policies without that table's own policies (which ask
-- gate.member_vaults()); it reveals only the caller's own memberships.
-- STABLE: evaluated once per statement when a policy calls it as
-- (SELECT gate.shared_vault_ids()).
CREATE FUNCTION gate.shared_vault_ids() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(p.vault_id)
      FROM api.access_policies p
     WHERE p.user_id = gate.current_user_id()
$$;
GRANT EXECUTE ON FUNCTION gate.shared_vault_ids() TO app_user;

-- Members read a vault: its owner, and everyone holding an access policy for
-- it. gate.member_vaults() is the union of the two, so this is the policy of
-- 000005 in another shape: `id = ANY (array)` is an index condition, and
-- `owner_id = … OR id = ANY (…)` can be a BitmapOr of the owner_id and
-- primary-key indexes, where `id IN (SELECT gate.member_vaults())` was a
-- filter over every row of the table. (owner_id is still checked directly:
-- a row just inserted is not visible to the helper's snapshot, and
-- INSERT … RETURNING must see it.)
ALTER POLICY vaults_member_select ON api.vaults
    USING (owner_id = (SELECT gate.current_user_id())
           OR id = ANY ((SELECT gate.shared_vault_ids())::uuid[]));

-- PostgREST's db-pre-request, as 000009 made it, plus the signing-key check,
-- with the lookups in one statement.
--
-- The signing key: authsvc names it in the token's `kid` claim (the same
-- value as the protected header's kid, which PostgREST does not expose); a
-- token without that claim is held to the kid of its protected header, read
-- from the Authorization header (nginx refuses a request with two, 400, so
-- this is the token PostgREST verified). The key
-- must be published (next, current or retired) at the moment of the
-- request: a revoked or removed key's tokens are refused from the commit
-- that removes it, even while PostgREST still takes them (its JWT cache,
-- which 12.0.2 does not clear when keys change, or the milliseconds before
-- it reloads its keys). The refusal carries PostgREST's own code for a
-- token no published key verifies (PGRST301), so a client sees one code
-- whichever of the two noticed first.
--
-- What this check cannot do: the kid is whatever the signer wrote. A token
-- forged with a stolen key may name a key still published; only PostgREST's
-- signature check, against the published set, stops it. That is why
-- PostgREST's JWT cache stays off (docs/auth.md).
--
-- STABLE: it only reads, and its lookups see the snapshot of the request's
-- statement, which begins after any logout or revocation that committed
-- before it.
CREATE OR REPLACE FUNCTION gate.check_request() RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw        text := current_setting('request.jwt.claims', true);
    headers    text := nullif(current_setting('request.headers', true), '');
    claims     jsonb;
    aud        jsonb;
    token_kid  text;
    bearer     text;
    token_sub  uuid;
    token_sid  uuid;
    issuer     text;
    audience   text;
    max_ttl    integer;
    key_ok     boolean;
    session_ok boolean;
    uuid_re    constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
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
    -- reachable except through it. The headers are parsed only when they
    -- hold a Prefer header: PostgREST writes header names in lower case as
    -- the keys of this JSON object, and a quote inside a value is escaped,
    -- so the text "prefer" in quotes appears exactly when there is one.
    IF headers IS NOT NULL AND strpos(headers, '"prefer"') > 0
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

    IF claims ->> 'sub' ~ uuid_re THEN
        token_sub := (claims ->> 'sub')::uuid;
    END IF;
    IF claims ->> 'sid' ~ uuid_re THEN
        token_sid := (claims ->> 'sid')::uuid;
    END IF;
    token_kid := claims ->> 'kid';
    IF token_kid IS NULL AND headers IS NOT NULL THEN
        -- PostgREST verified this very token: its first segment is the
        -- base64url of the protected header's JSON.
        bearer := substring(headers::json ->> 'authorization' FROM '^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_-]+)[.]');
        IF bearer IS NOT NULL THEN
            BEGIN
                token_kid := convert_from(decode(rpad(translate(bearer, '-_', '+/'), (length(bearer) + 3) / 4 * 4, '='), 'base64'),
                                          'UTF8')::jsonb ->> 'kid';
            EXCEPTION WHEN others THEN
                token_kid := NULL;
            END;
        END IF;
    END IF;

    -- One statement: the policy, whether the key is published, and whether
    -- the session is alive (see below).
    SELECT p.issuer, p.audience, p.max_ttl_seconds,
           EXISTS (SELECT 1 FROM auth.signing_keys k
                    WHERE k.kid = token_kid AND k.state IN ('next', 'current', 'retired')),
           EXISTS (SELECT 1 FROM auth.sessions s
                    WHERE s.id = token_sid
                      AND s.user_id = token_sub
                      AND s.revoked_at IS NULL
                      AND s.expires_at > now()
                      AND s.last_used_at > now() - make_interval(secs => p.idle_ttl_seconds))
      INTO issuer, audience, max_ttl, key_ok, session_ok
      FROM auth.token_policy p;
    IF NOT FOUND THEN
        PERFORM gate.refuse('invalid_token', 'token validation is not configured');
    END IF;

    IF jsonb_typeof(claims -> 'iss') IS DISTINCT FROM 'string' OR claims ->> 'iss' <> issuer THEN
        PERFORM gate.refuse('invalid_token', 'token issuer is not accepted');
    END IF;

    aud := claims -> 'aud';
    IF aud IS NULL OR NOT (
        (jsonb_typeof(aud) = 'string' AND aud #>> '{}' = audience) OR
        (jsonb_typeof(aud) = 'array' AND aud ? audience)
    ) THEN
        PERFORM gate.refuse('invalid_token', 'token audience is not accepted');
    END IF;

    IF jsonb_typeof(claims -> 'exp') IS DISTINCT FROM 'number'
       OR jsonb_typeof(claims -> 'iat') IS DISTINCT FROM 'number' THEN
        PERFORM gate.refuse('invalid_token', 'token must carry iat and exp');
    END IF;
    IF (claims ->> 'exp')::numeric - (claims ->> 'iat')::numeric > max_ttl THEN
        PERFORM gate.refuse('invalid_token', 'token lifetime is longer than allowed');
    END IF;
    IF (claims ->> 'exp')::numeric <= extract(epoch FROM clock_timestamp()) THEN
        PERFORM gate.refuse('token_expired', 'token has expired');
    END IF;

    IF claims ->> 'role' IS DISTINCT FROM 'app_user' THEN
        PERFORM gate.refuse('invalid_token', 'token role is not accepted');
    END IF;

    IF token_sub IS NULL OR token_sid IS NULL THEN
        PERFORM gate.refuse('invalid_token', 'token subject or session is malformed');
    END IF;

    IF NOT key_ok THEN
        PERFORM gate.refuse('PGRST301', 'the key that signed the token is not published');
    END IF;

    -- The session must be alive and belong to the token's subject: logout,
    -- refresh-token reuse and revocation take effect on the next request.
    -- Alive also means used (logged into or refreshed) within the idle
    -- lifetime of the policy.
    IF NOT session_ok THEN
        PERFORM gate.refuse('session_revoked', 'the session has ended; log in again');
    END IF;
END
$$;
