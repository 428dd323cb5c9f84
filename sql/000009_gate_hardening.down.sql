-- gate.check_request() and gate.address_refused() as 000006 and 000008 made them.
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

CREATE OR REPLACE FUNCTION gate.address_refused(a inet, allow cidr[]) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM unnest(allow) n WHERE a <<= n)
       AND a <<= ANY (ARRAY['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16',
                            '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24', '192.168.0.0/16', '198.18.0.0/15',
                            '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
                            '::/96', '::1/128', '::ffff:0:0/96', '64:ff9b::/96', '2002::/16', '2001:db8::/32',
                            'fc00::/7', 'fe80::/10', 'ff00::/8']::cidr[])
$$;

DROP FUNCTION IF EXISTS gate.refuse_request(integer, text, text);
