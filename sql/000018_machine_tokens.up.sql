-- Machine tokens (docs/auth.md "Machine tokens", docs/crypto.md §13): a
-- credential of its own for CI jobs and servers, made by a signed-in person.
--
-- 1. auth.machine_tokens holds what the server knows of a token: its id
--    (the token's user id in every vault it is a member of), its owner, a
--    name, its public keys with the key record the token signed, the
--    owner's anchor (an HMAC only the token can check), when it was made,
--    when it expires, when it was revoked and last used. Never its secret:
--    the token logs in by signing a nonce with a key derived from it.
-- 2. Token ids and user ids are one namespace: a token id that is some
--    account's user id is refused, and a sign-up whose user id is a token
--    id is refused like a taken identity. Otherwise a person could sign up
--    under a token's id and inherit its grants.
-- 3. gate.is_machine() says whether the caller is a machine token (the
--    claims gate.check_request() has checked, migration 000019).
-- 4. The owner reads their tokens through api.machine_tokens (name, vaults
--    and roles, times); nobody else sees that a token exists, and a
--    machine sees none.
-- 5. Vault trails name tokens: a grant to a token is recorded as
--    token.created, and authsvc records token.revoked in each vault the
--    token held when its owner revokes it; webhooks may subscribe to both.

CREATE TABLE auth.machine_tokens (
    -- The token id: a version 4 uuid the client chose, part of the token.
    id                    uuid        PRIMARY KEY
                                      CHECK (id::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'),
    owner_id              uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    name                  text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    -- The token's key record (version 2, identity "token:" || id), signed
    -- by its own Ed25519 key; authsvc verifies it before the row exists.
    x25519_public         text        NOT NULL CHECK (x25519_public ~ '^[A-Za-z0-9+/]{43}=$'),
    ed25519_public        text        NOT NULL UNIQUE CHECK (ed25519_public ~ '^[A-Za-z0-9+/]{43}=$'),
    xwing_public          text        NOT NULL UNIQUE CHECK (octet_length(xwing_public) = 1624 AND xwing_public ~ '^[A-Za-z0-9+/]+==$'),
    key_record_signature  text        NOT NULL CHECK (key_record_signature ~ '^[A-Za-z0-9+/]{86}==$'),
    -- HMAC-SHA256 under a key only the token derives: the owner vouching
    -- for their own key to the token. Useless to anybody else.
    anchor                text        NOT NULL CHECK (anchor ~ '^[A-Za-z0-9+/]{43}=$'),
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- Every token expires, at most a year and a day after it was made.
    expires_at            timestamptz NOT NULL,
    revoked_at            timestamptz,
    last_used_at          timestamptz,
    CHECK (expires_at > created_at AND expires_at <= created_at + interval '366 days'),
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX machine_tokens_owner_idx ON auth.machine_tokens (owner_id);
-- A name belongs to one token of its owner at a time; a revoked token's
-- name is free again (rotating a token keeps its name).
CREATE UNIQUE INDEX machine_tokens_owner_name ON auth.machine_tokens (owner_id, name) WHERE revoked_at IS NULL;

-- ---------------------------------------------------------------- one namespace of ids

-- Both triggers take the same transaction lock on the id, so a sign-up and
-- a token creation with one id cannot both pass their check.
CREATE FUNCTION auth.lock_principal_id(id uuid) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_advisory_xact_lock(hashtextextended('zsm principal ' || id::text, 0)) $$;
REVOKE EXECUTE ON FUNCTION auth.lock_principal_id(uuid) FROM PUBLIC;

-- A sign-up whose user id is a token id inserts nothing; authsvc answers
-- it as a taken identity (409 identity_unavailable), the answer to any
-- taken id.
CREATE FUNCTION auth.users_not_a_token() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.lock_principal_id(NEW.id);
    IF EXISTS (SELECT 1 FROM auth.machine_tokens t WHERE t.id = NEW.id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION auth.users_not_a_token() FROM PUBLIC;
CREATE TRIGGER users_not_a_token BEFORE INSERT ON auth.users
    FOR EACH ROW EXECUTE FUNCTION auth.users_not_a_token();

-- A token whose id is a user id is refused as a duplicate key.
CREATE FUNCTION auth.machine_token_not_a_user() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM auth.lock_principal_id(NEW.id);
    IF EXISTS (SELECT 1 FROM auth.users u WHERE u.id = NEW.id) THEN
        RAISE EXCEPTION 'the token id is taken' USING ERRCODE = 'unique_violation', CONSTRAINT = 'machine_tokens_pkey';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION auth.machine_token_not_a_user() FROM PUBLIC;
CREATE TRIGGER machine_tokens_not_a_user BEFORE INSERT ON auth.machine_tokens
    FOR EACH ROW EXECUTE FUNCTION auth.machine_token_not_a_user();

-- What a token is never allowed to change once made: who it is, whose it
-- is and what its keys are. A revocation is never undone.
CREATE FUNCTION auth.machine_token_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.owner_id <> OLD.owner_id OR NEW.name <> OLD.name
       OR NEW.x25519_public <> OLD.x25519_public OR NEW.ed25519_public <> OLD.ed25519_public
       OR NEW.xwing_public <> OLD.xwing_public OR NEW.key_record_signature <> OLD.key_record_signature
       OR NEW.anchor <> OLD.anchor OR NEW.created_at <> OLD.created_at OR NEW.expires_at <> OLD.expires_at THEN
        RAISE EXCEPTION 'a machine token changes only its revocation and last use' USING ERRCODE = '42501';
    END IF;
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'a revoked machine token stays revoked' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION auth.machine_token_update() FROM PUBLIC;
CREATE TRIGGER machine_tokens_update BEFORE UPDATE ON auth.machine_tokens
    FOR EACH ROW EXECUTE FUNCTION auth.machine_token_update();

-- ---------------------------------------------------------------- who is calling

-- Whether the caller is a machine token. Only true for claims that passed
-- gate.check_request(), which refuses a machine claim that does not name a
-- live token (000019), so policies may rely on it.
CREATE FUNCTION gate.is_machine() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'zsm_kind' = 'machine', false)
$$;
REVOKE EXECUTE ON FUNCTION gate.is_machine() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gate.is_machine() TO app_user;

-- ---------------------------------------------------------------- the owner's list

-- The caller's tokens, revoked and expired ones included, with the vaults
-- each holds a grant in. A machine gets nothing. SECURITY DEFINER to read
-- auth.machine_tokens and the tokens' grants (which the owner may not see
-- through access_policies' own policies when it is not the vault's admin).
CREATE FUNCTION gate.machine_tokens()
RETURNS TABLE (id uuid, name text, created_at timestamptz, expires_at timestamptz,
               last_used_at timestamptz, revoked_at timestamptz, vaults json)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
           coalesce((SELECT json_agg(json_build_object('vault_id', p.vault_id, 'role', p.role) ORDER BY p.vault_id)
                       FROM api.access_policies p WHERE p.user_id = t.id), '[]'::json)
      FROM auth.machine_tokens t
     WHERE t.owner_id = gate.current_user_id() AND NOT gate.is_machine()
$$;
REVOKE EXECUTE ON FUNCTION gate.machine_tokens() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gate.machine_tokens() TO app_user;

CREATE VIEW api.machine_tokens WITH (security_invoker = true) AS
    SELECT * FROM gate.machine_tokens();
REVOKE ALL ON api.machine_tokens FROM PUBLIC;
GRANT SELECT ON api.machine_tokens TO app_user;

-- ---------------------------------------------------------------- events

ALTER TABLE api.vault_events DROP CONSTRAINT vault_events_type_check,
    ADD CONSTRAINT vault_events_type_check CHECK (type IN (
        'secret.created', 'secret.updated', 'secret.deleted', 'secret.rotation_due', 'secret.rotated',
        'member.added', 'member.removed', 'webhook.test', 'webhook.disabled', 'token.created', 'token.revoked'));
ALTER TABLE api.webhooks DROP CONSTRAINT webhooks_event_types_check,
    ADD CONSTRAINT webhooks_event_types_check CHECK (event_types IS NULL OR (cardinality(event_types) BETWEEN 1 AND 16
        AND event_types <@ ARRAY['secret.created', 'secret.updated', 'secret.deleted', 'secret.rotation_due',
            'secret.rotated', 'member.added', 'member.removed', 'webhook.disabled', 'token.created', 'token.revoked']));

-- 000008's webhook creation, with the two token events among the types.
CREATE OR REPLACE FUNCTION gate.create_webhook(vault uuid, target text, types text[]) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid    uuid := gate.current_user_id();
    wid    uuid := gen_random_uuid();
    secret text;
    t      text;
BEGIN
    IF uid IS NULL OR vault IS NULL OR coalesce(gate.vault_role(vault), '') NOT IN ('owner', 'admin') THEN
        RAISE EXCEPTION 'only owners and admins of the vault may manage its webhooks' USING ERRCODE = '42501';
    END IF;
    PERFORM gate.check_webhook_url(target);
    IF types IS NOT NULL AND cardinality(types) = 0 THEN
        types := NULL;
    END IF;
    IF types IS NOT NULL THEN
        FOREACH t IN ARRAY types LOOP
            IF t IS NULL OR t NOT IN ('secret.created', 'secret.updated', 'secret.deleted', 'secret.rotation_due',
                                      'secret.rotated', 'member.added', 'member.removed', 'webhook.disabled',
                                      'token.created', 'token.revoked') THEN
                RAISE EXCEPTION 'unknown event type %', coalesce(t, 'null') USING ERRCODE = '22023';
            END IF;
        END LOOP;
        SELECT array_agg(DISTINCT x ORDER BY x) INTO types FROM unnest(types) x;
        IF cardinality(types) > 16 THEN
            RAISE EXCEPTION 'too many event types' USING ERRCODE = '22023';
        END IF;
    END IF;
    IF (SELECT count(*) FROM api.webhooks w WHERE w.vault_id = vault) >= 20 THEN
        RAISE EXCEPTION 'a vault has at most 20 webhooks' USING ERRCODE = '22023';
    END IF;
    -- 244 bits from the strong random source behind gen_random_uuid().
    secret := 'whsec_' || encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex');
    INSERT INTO api.webhooks (id, vault_id, url, event_types, signing_secret, created_by)
    VALUES (wid, vault, target, types, secret, uid);
    RETURN json_build_object('id', wid, 'signing_secret', secret);
END
$$;

-- 000008's membership events: a grant to a machine token is the token
-- arriving in the vault, token.created.
CREATE OR REPLACE FUNCTION gate.member_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM gate.record_event(NEW.vault_id,
            CASE WHEN EXISTS (SELECT 1 FROM auth.machine_tokens t WHERE t.id = NEW.user_id) THEN 'token.created' ELSE 'member.added' END,
            NULL, NULL, NEW.user_id, NEW.role, NULL);
    ELSIF EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = OLD.vault_id) THEN
        PERFORM gate.record_event(OLD.vault_id, 'member.removed', NULL, NULL, OLD.user_id, OLD.role, NULL);
    END IF;
    RETURN NULL;
END
$$;
