-- PostgREST's JWT cache made safe (docs/auth.md "PostgREST's JWT cache"):
-- auth.token_policy.min_iat is the earliest iat a token may carry, raised by
-- authsvc when it revokes a signing key, and gate.check_request() refuses a
-- token issued before it. This is what keeps a key revocation immediate
-- for tokens PostgREST does not verify again, forged ones included.

ALTER TABLE auth.token_policy ADD COLUMN min_iat bigint NOT NULL DEFAULT 0 CHECK (min_iat >= 0);

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
    min_iat    bigint;
    key_ok     boolean;
    session_ok boolean;
    machine    boolean;
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
    -- A machine token's access token (docs/auth.md "Machine tokens") says
    -- so with zsm_kind and tid; a claim set with either is held to the
    -- machine rules below, whatever else it says.
    machine := claims ? 'zsm_kind' OR claims ? 'tid';
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
    -- the session, or for a machine its token, is alive (see below).
    SELECT p.issuer, p.audience, p.max_ttl_seconds, p.min_iat,
           EXISTS (SELECT 1 FROM auth.signing_keys k
                    WHERE k.kid = token_kid AND k.state IN ('next', 'current', 'retired')),
           CASE WHEN machine THEN
               EXISTS (SELECT 1 FROM auth.machine_tokens m
                        WHERE m.id = token_sub
                          AND m.revoked_at IS NULL
                          AND m.expires_at > now())
           ELSE
               EXISTS (SELECT 1 FROM auth.sessions s
                        WHERE s.id = token_sid
                          AND s.user_id = token_sub
                          AND s.revoked_at IS NULL
                          AND s.expires_at > now()
                          AND s.last_used_at > now() - make_interval(secs => p.idle_ttl_seconds))
           END
      INTO issuer, audience, max_ttl, min_iat, key_ok, session_ok
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

    -- A machine's token: exactly zsm_kind "machine", tid = sub, and no
    -- session; a person's: a session. Neither can pass for the other (a
    -- person's claims with zsm_kind added name no machine token, whose ids
    -- are never user ids, and have a sid besides).
    IF machine THEN
        IF jsonb_typeof(claims -> 'zsm_kind') IS DISTINCT FROM 'string' OR claims ->> 'zsm_kind' <> 'machine'
           OR jsonb_typeof(claims -> 'tid') IS DISTINCT FROM 'string' OR claims ->> 'tid' IS DISTINCT FROM claims ->> 'sub'
           OR token_sub IS NULL OR claims ? 'sid' THEN
            PERFORM gate.refuse('invalid_token', 'a machine token must say zsm_kind machine and tid = sub, and have no session');
        END IF;
    ELSIF token_sub IS NULL OR token_sid IS NULL THEN
        PERFORM gate.refuse('invalid_token', 'token subject or session is malformed');
    END IF;

    IF NOT key_ok THEN
        PERFORM gate.refuse('PGRST301', 'the key that signed the token is not published');
    END IF;

    -- PostgREST's JWT cache (12.0.2) keeps every token it verified until
    -- the token's exp, keys revoked or not, and it tries every published
    -- key whatever kid the token names: a token forged with a stolen key
    -- and cached before the key's revocation could name a key still
    -- published and pass the key check above. PostgREST refuses an iat
    -- more than 30 s ahead of its clock, so every token it verified while
    -- the revoked key was still published says an iat before the key's
    -- removal + PostgREST's reload + 30 s; authsvc writes that instant
    -- here (signer.RevocationWindow) in the revocation's own transaction,
    -- and from its commit on every such token is refused, cached or not.
    -- Tokens authsvc issues from then on carry an iat at or after it.
    IF (claims ->> 'iat')::numeric < min_iat THEN
        PERFORM gate.refuse('token_expired', 'token was issued before a signing key was revoked; refresh it');
    END IF;

    -- The session must be alive and belong to the token's subject: logout,
    -- refresh-token reuse and revocation take effect on the next request.
    -- Alive also means used (logged into or refreshed) within the idle
    -- lifetime of the policy. A machine's token must name a machine token
    -- that is neither revoked nor expired: revoking it, or its expiry,
    -- takes effect on the next request too, whatever the access token's
    -- own exp says.
    IF NOT session_ok AND machine THEN
        PERFORM gate.refuse('session_revoked', 'the machine token was revoked or has expired');
    ELSIF NOT session_ok THEN
        PERFORM gate.refuse('session_revoked', 'the session has ended; log in again');
    END IF;
END
$$;

