-- Hardening of the database gate:
--
-- 1. gate.check_request() refuses planned and estimated counts (400
--    count_not_allowed), whatever the spelling of the Prefer header.
-- 2. gate.address_refused() refuses every special-purpose address range as
--    authsvc's delivery guard does.

-- Ends the request with the given HTTP status and a JSON body {code,
-- message}, for refusals that are not about the token (gate.refuse is 401).
CREATE FUNCTION gate.refuse_request(status integer, code text, message text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE SQLSTATE 'PGRST' USING
        message = json_build_object('code', code, 'message', message, 'details', NULL, 'hint', NULL)::text,
        detail  = json_build_object('status', status, 'headers', json_build_object())::text;
END
$$;

-- The same function as in 000006, plus the count check.
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

-- The webhook address guard at creation, in step with authsvc's netguard
-- (authsvc/netguard/netguard.go; a test compares the two): every range of
-- the IANA IPv4 and IPv6 Special-Purpose Address Registries, multicast,
-- deprecated site-local, SIIT (::ffff:0:0:0/96) and every IPv6 address
-- outside global unicast (2000::/3) are refused unless inside a network the
-- operator allows. Stricter than delivery in one respect: an IPv4-mapped
-- literal (::ffff:a.b.c.d) is refused whatever it maps to (nobody needs to
-- write one). When an allowed network is a translation prefix, the IPv4
-- address inside is checked at delivery.
CREATE OR REPLACE FUNCTION gate.address_refused(a inet, allow cidr[]) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM unnest(allow) n WHERE a <<= n)
       AND (a <<= ANY (ARRAY[
                -- IPv4
                '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
                '192.0.0.0/24', '192.0.2.0/24', '192.31.196.0/24', '192.52.193.0/24', '192.88.99.0/24',
                '192.168.0.0/16', '192.175.48.0/24', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24',
                '224.0.0.0/4', '240.0.0.0/4', '255.255.255.255/32',
                -- IPv6
                '::/96', '::1/128', '::ffff:0:0/96', '::ffff:0:0:0/96', '64:ff9b::/96', '64:ff9b:1::/48',
                '100::/64', '100:0:0:1::/64', '2001::/23', '2001::/32', '2001:db8::/32', '2002::/16',
                '2620:4f:8000::/48', '3fff::/20', '5f00::/16', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8'
            ]::cidr[])
            OR (family(a) = 6 AND NOT a <<= '2000::/3'::cidr))
$$;
