-- Events, webhooks, rotation policies and the vault audit trail.
--
-- The server cannot rotate a value it cannot read: it keeps the schedule,
-- tells, and the client rotates. Every data change (a secret created,
-- changed, rotated or deleted; a member added or removed) is recorded by a
-- trigger as a row of api.vault_events in the transaction of the change, and
-- fanned out, still in that transaction, to one row of api.webhook_deliveries
-- per matching webhook: the outbox. An event can therefore never be lost
-- after a commit, nor exist without its change. authsvc's worker delivers
-- the outbox (docs/webhooks.md).
--
-- Events hold ids, types, revisions, roles, actors and times: never a
-- ciphertext, never anything a client encrypted.

-- What the operator allows webhook URLs to point at. authsvc writes the single
-- row when its worker starts (AUTHSVC_WEBHOOK_ALLOW_HTTP,
-- AUTHSVC_WEBHOOK_ALLOW_NETS); until then nothing beyond public https.
CREATE TABLE auth.webhook_policy (
    singleton   boolean  PRIMARY KEY DEFAULT true CHECK (singleton),
    allow_http  boolean  NOT NULL DEFAULT false,
    allow_nets  cidr[]   NOT NULL DEFAULT '{}'
);
INSERT INTO auth.webhook_policy DEFAULT VALUES;

-- The session of the caller: the `sid` claim (a uuid, or the request was
-- refused by gate.check_request()).
CREATE FUNCTION gate.current_session_id() RETURNS uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sid')::uuid
$$;

-- ---------------------------------------------------------------- the audit trail

CREATE TABLE api.vault_events (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    seq         bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    vault_id    uuid        NOT NULL,
    type        text        NOT NULL CHECK (type IN (
                    'secret.created', 'secret.updated', 'secret.deleted', 'secret.rotation_due', 'secret.rotated',
                    'member.added', 'member.removed', 'webhook.test', 'webhook.disabled')),
    secret_id   uuid,
    revision    bigint,
    actor_id    uuid,       -- the user whose request made the change; NULL for the server's own events
    session_id  uuid,       -- and the session it came from
    member_id   uuid,       -- member.*: whose membership
    role        text        CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    webhook_id  uuid,       -- webhook.*
    due_at      timestamptz -- secret.rotation_due: the due time this event is about
);
-- No foreign keys: the record outlives what it describes.
CREATE INDEX vault_events_vault_idx ON api.vault_events (vault_id, seq);
CREATE INDEX vault_events_secret_idx ON api.vault_events (secret_id) WHERE secret_id IS NOT NULL;

ALTER TABLE api.vault_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.vault_events FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.vault_events FROM PUBLIC;
GRANT SELECT ON api.vault_events TO app_user;
CREATE POLICY vault_events_member_select ON api.vault_events FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
-- authsvc (through the triggers below and its worker) appends and reads; it
-- gives up UPDATE, DELETE and TRUNCATE, and the trigger refuses those to
-- everybody else, superusers included.
REVOKE UPDATE, DELETE, TRUNCATE ON api.vault_events FROM authsvc;
CREATE POLICY vault_events_record ON api.vault_events FOR INSERT TO authsvc WITH CHECK (true);
CREATE POLICY vault_events_worker ON api.vault_events FOR SELECT TO authsvc USING (true);

CREATE FUNCTION gate.vault_events_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'vault events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER vault_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON api.vault_events
    FOR EACH STATEMENT EXECUTE FUNCTION gate.vault_events_append_only();

-- ---------------------------------------------------------------- webhooks

CREATE TABLE api.webhooks (
    id                    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    vault_id              uuid        NOT NULL REFERENCES api.vaults (id) ON DELETE CASCADE,
    url                   text        NOT NULL CHECK (octet_length(url) <= 2048
                                      AND url ~ '^https?://[^/?#@[:space:]]+([/?#][^[:space:]]*)?$'),
    -- NULL: every type.
    event_types           text[]      CHECK (event_types IS NULL OR (cardinality(event_types) BETWEEN 1 AND 16
                                      AND event_types <@ ARRAY['secret.created', 'secret.updated', 'secret.deleted',
                                          'secret.rotation_due', 'secret.rotated', 'member.added', 'member.removed',
                                          'webhook.disabled'])),
    enabled               boolean     NOT NULL DEFAULT true,
    disabled_at           timestamptz,
    disabled_reason       text        CHECK (disabled_reason IN ('failing', 'by_user')),
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    last_success_at       timestamptz,
    last_failure_at       timestamptz,
    -- The HMAC key: generated by the database, shown once by
    -- api.create_webhook(), readable afterwards by authsvc only.
    signing_secret        text        NOT NULL CHECK (signing_secret ~ '^whsec_[0-9a-f]{64}$'),
    created_by            uuid        NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_vault_id_idx ON api.webhooks (vault_id);
ALTER TABLE api.webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.webhooks FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.webhooks FROM PUBLIC;
-- Column grants: everything but the signing secret. Rows are made only by
-- api.create_webhook(); users may switch them on and off, change the types,
-- and delete them.
GRANT SELECT (id, vault_id, url, event_types, enabled, disabled_at, disabled_reason, consecutive_failures,
              last_success_at, last_failure_at, created_by, created_at) ON api.webhooks TO app_user;
GRANT UPDATE (enabled, event_types) ON api.webhooks TO app_user;
GRANT DELETE ON api.webhooks TO app_user;
CREATE POLICY webhooks_admin_select ON api.webhooks FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY webhooks_admin_update ON api.webhooks FOR UPDATE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])))
    WITH CHECK (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY webhooks_admin_delete ON api.webhooks FOR DELETE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY webhooks_definer_select ON api.webhooks FOR SELECT TO authsvc USING (true);
CREATE POLICY webhooks_definer_insert ON api.webhooks FOR INSERT TO authsvc WITH CHECK (true);
CREATE POLICY webhooks_worker_update ON api.webhooks FOR UPDATE TO authsvc USING (true) WITH CHECK (true);

-- Switching a webhook back on clears its failure count; switching it off by
-- hand says so.
CREATE FUNCTION gate.webhook_state() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.enabled AND NOT OLD.enabled THEN
        NEW.consecutive_failures := 0;
        NEW.disabled_at := NULL;
        NEW.disabled_reason := NULL;
    ELSIF OLD.enabled AND NOT NEW.enabled AND NEW.disabled_reason IS NULL THEN
        NEW.disabled_at := now();
        NEW.disabled_reason := 'by_user';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER webhooks_state BEFORE UPDATE ON api.webhooks
    FOR EACH ROW EXECUTE FUNCTION gate.webhook_state();

-- The outbox: one row per (event, webhook), written with the event. The
-- worker claims due rows with FOR UPDATE SKIP LOCKED and leases them
-- (locked_until) while it delivers outside any transaction; a lease left by
-- a worker that died expires and another replica delivers again, under the
-- same event id.
CREATE TABLE api.webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       uuid        NOT NULL REFERENCES api.webhooks (id) ON DELETE CASCADE,
    vault_id         uuid        NOT NULL,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    locked_until     timestamptz,
    last_status      integer,
    last_error       text        CHECK (octet_length(last_error) <= 512),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON api.webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_vault_idx ON api.webhook_deliveries (vault_id, id);
CREATE INDEX webhook_deliveries_done_idx ON api.webhook_deliveries (created_at) WHERE state <> 'pending';
ALTER TABLE api.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.webhook_deliveries FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.webhook_deliveries FROM PUBLIC;
GRANT SELECT ON api.webhook_deliveries TO app_user;
CREATE POLICY webhook_deliveries_admin_select ON api.webhook_deliveries FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY webhook_deliveries_worker_select ON api.webhook_deliveries FOR SELECT TO authsvc USING (true);
CREATE POLICY webhook_deliveries_worker_insert ON api.webhook_deliveries FOR INSERT TO authsvc WITH CHECK (true);
CREATE POLICY webhook_deliveries_worker_update ON api.webhook_deliveries FOR UPDATE TO authsvc USING (true) WITH CHECK (true);
CREATE POLICY webhook_deliveries_worker_delete ON api.webhook_deliveries FOR DELETE TO authsvc USING (state <> 'pending');

-- The delivery log: one row per attempt.
CREATE TABLE api.webhook_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES api.webhook_deliveries (id) ON DELETE CASCADE,
    webhook_id   uuid        NOT NULL,
    vault_id     uuid        NOT NULL,
    event_id     uuid        NOT NULL,
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  integer     NOT NULL,
    status       integer,
    error        text        CHECK (octet_length(error) <= 512)
);
CREATE INDEX webhook_attempts_delivery_idx ON api.webhook_attempts (delivery_id);
CREATE INDEX webhook_attempts_webhook_idx ON api.webhook_attempts (webhook_id, id);
ALTER TABLE api.webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.webhook_attempts FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.webhook_attempts FROM PUBLIC;
GRANT SELECT ON api.webhook_attempts TO app_user;
CREATE POLICY webhook_attempts_admin_select ON api.webhook_attempts FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin'])));
CREATE POLICY webhook_attempts_worker_insert ON api.webhook_attempts FOR INSERT TO authsvc WITH CHECK (true);
CREATE POLICY webhook_attempts_worker_select ON api.webhook_attempts FOR SELECT TO authsvc USING (true);

-- Fan-out: every event becomes one delivery per enabled webhook of its vault
-- that wants its type. webhook.test goes to the tested webhook only;
-- webhook.disabled to every other.
CREATE FUNCTION gate.fan_out_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO api.webhook_deliveries (webhook_id, vault_id, event_id, event_type)
    SELECT w.id, w.vault_id, NEW.id, NEW.type
      FROM api.webhooks w
     WHERE w.vault_id = NEW.vault_id
       AND w.enabled
       AND (NEW.type = 'webhook.test' OR w.event_types IS NULL OR NEW.type = ANY (w.event_types))
       AND (NEW.type <> 'webhook.test' OR w.id = NEW.webhook_id)
       AND NOT (NEW.type = 'webhook.disabled' AND w.id = NEW.webhook_id);
    IF FOUND THEN
        PERFORM pg_notify('zsm_events', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER vault_events_fan_out AFTER INSERT ON api.vault_events
    FOR EACH ROW EXECUTE FUNCTION gate.fan_out_event();

-- Records an event of the caller (actor and session from the token).
CREATE FUNCTION gate.record_event(vault uuid, kind text, secret uuid, rev bigint, member uuid, member_role text, webhook uuid)
RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    eid uuid;
BEGIN
    INSERT INTO api.vault_events (vault_id, type, secret_id, revision, actor_id, session_id, member_id, role, webhook_id)
    VALUES (vault, kind, secret, rev, gate.current_user_id(), gate.current_session_id(), member, member_role, webhook)
    RETURNING id INTO eid;
    RETURN eid;
END
$$;

-- URL rules at creation: http(s) only, https unless the operator allows
-- http; no credentials; an address literal must not be loopback, private,
-- link-local, shared, multicast or reserved (unless inside an allowed
-- network). Names are checked by authsvc at every delivery, against the
-- addresses they resolve to then.
CREATE FUNCTION gate.address_refused(a inet, allow cidr[]) RETURNS boolean
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

CREATE FUNCTION gate.check_webhook_url(u text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol   auth.webhook_policy%ROWTYPE;
    m     text[];
    host  text;
    addr  inet;
BEGIN
    SELECT * INTO pol FROM auth.webhook_policy;
    IF u IS NULL OR octet_length(u) > 2048 THEN
        RAISE EXCEPTION 'webhook URL: missing or longer than 2048 bytes' USING ERRCODE = '22023';
    END IF;
    m := regexp_match(u, '^(https?)://([^/?#@[:space:]]+)([/?#][^[:space:]]*)?$');
    IF m IS NULL THEN
        RAISE EXCEPTION 'webhook URL: must be http(s)://host[:port][/path], without credentials or spaces' USING ERRCODE = '22023';
    END IF;
    IF m[1] = 'http' AND NOT coalesce(pol.allow_http, false) THEN
        RAISE EXCEPTION 'webhook URL: must use https' USING ERRCODE = '22023';
    END IF;
    IF m[2] ~ '^\[' THEN
        host := substring(m[2] from '^\[([0-9A-Fa-f:.]+)\](:[0-9]{1,5})?$');
    ELSE
        host := substring(m[2] from '^([^:\[\]]+)(:[0-9]{1,5})?$');
    END IF;
    IF host IS NULL OR host = '' THEN
        RAISE EXCEPTION 'webhook URL: the host or port is malformed' USING ERRCODE = '22023';
    END IF;
    IF host ~ '^[0-9.]+$' OR host ~ ':' THEN
        BEGIN
            addr := host::inet;
        EXCEPTION WHEN others THEN
            RAISE EXCEPTION 'webhook URL: % is not an IP address', host USING ERRCODE = '22023';
        END;
        IF gate.address_refused(addr, coalesce(pol.allow_nets, '{}')) THEN
            RAISE EXCEPTION 'webhook URL: % is a loopback, private, link-local or reserved address', host USING ERRCODE = '22023';
        END IF;
    ELSIF lower(host) = 'localhost' OR lower(host) LIKE '%.localhost' THEN
        IF gate.address_refused('127.0.0.1'::inet, coalesce(pol.allow_nets, '{}')) THEN
            RAISE EXCEPTION 'webhook URL: % is a loopback address', host USING ERRCODE = '22023';
        END IF;
    END IF;
END
$$;

-- Creates a webhook and returns its signing secret, the only time anybody
-- sees it. Owners and admins of the vault only. SECURITY DEFINER (the
-- secret is made here and no caller may write or read the column); not in
-- schema api: api.create_webhook() below is the door.
CREATE FUNCTION gate.create_webhook(vault uuid, target text, types text[]) RETURNS json
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
                                      'secret.rotated', 'member.added', 'member.removed', 'webhook.disabled') THEN
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
GRANT EXECUTE ON FUNCTION gate.create_webhook(uuid, text, text[]) TO app_user;

-- Sends a webhook.test event to one webhook (owners and admins).
CREATE FUNCTION gate.test_webhook(webhook uuid) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w api.webhooks%ROWTYPE;
BEGIN
    SELECT * INTO w FROM api.webhooks x WHERE x.id = webhook;
    IF NOT FOUND OR gate.current_user_id() IS NULL OR coalesce(gate.vault_role(w.vault_id), '') NOT IN ('owner', 'admin') THEN
        RAISE EXCEPTION 'only owners and admins of the vault may manage its webhooks' USING ERRCODE = '42501';
    END IF;
    IF NOT w.enabled THEN
        RAISE EXCEPTION 'the webhook is disabled; enable it first' USING ERRCODE = '22023';
    END IF;
    RETURN gate.record_event(w.vault_id, 'webhook.test', NULL, NULL, NULL, NULL, w.id);
END
$$;
GRANT EXECUTE ON FUNCTION gate.test_webhook(uuid) TO app_user;

-- The doors in the exposed schema: SECURITY INVOKER, so the rules above are
-- all the caller gets.
CREATE FUNCTION api.create_webhook(vault_id uuid, url text, event_types text[] DEFAULT NULL) RETURNS json
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT gate.create_webhook(vault_id, url, event_types) $$;
GRANT EXECUTE ON FUNCTION api.create_webhook(uuid, text, text[]) TO app_user;

CREATE FUNCTION api.test_webhook(webhook_id uuid) RETURNS uuid
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT gate.test_webhook(webhook_id) $$;
GRANT EXECUTE ON FUNCTION api.test_webhook(uuid) TO app_user;

-- ---------------------------------------------------------------- rotation policies

CREATE TABLE api.rotation_policies (
    secret_id              uuid        PRIMARY KEY REFERENCES api.secrets (id) ON DELETE CASCADE,
    vault_id               uuid        NOT NULL REFERENCES api.vaults (id) ON DELETE CASCADE,
    interval_seconds       bigint      NOT NULL CHECK (interval_seconds BETWEEN 60 AND 315360000),
    revision               bigint      NOT NULL,  -- the secret's current revision
    last_rotated_at        timestamptz NOT NULL,  -- the last rotation, or the value's age when the policy was made
    last_rotated_revision  bigint,                -- the revision the last rotation wrote
    next_due_at            timestamptz NOT NULL,
    last_notified_due_at   timestamptz,           -- the due time secret.rotation_due was last raised for
    created_by             uuid        NOT NULL DEFAULT gate.current_user_id(),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rotation_policies_due_idx ON api.rotation_policies (next_due_at);
CREATE INDEX rotation_policies_vault_idx ON api.rotation_policies (vault_id);
ALTER TABLE api.rotation_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.rotation_policies FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.rotation_policies FROM PUBLIC;
GRANT SELECT, DELETE ON api.rotation_policies TO app_user;
GRANT INSERT (secret_id, vault_id, interval_seconds) ON api.rotation_policies TO app_user;
GRANT UPDATE (interval_seconds) ON api.rotation_policies TO app_user;
CREATE POLICY rotation_policies_member_select ON api.rotation_policies FOR SELECT TO app_user
    USING (vault_id IN (SELECT gate.member_vaults()));
CREATE POLICY rotation_policies_editor_insert ON api.rotation_policies FOR INSERT TO app_user
    WITH CHECK (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY rotation_policies_editor_update ON api.rotation_policies FOR UPDATE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])))
    WITH CHECK (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY rotation_policies_editor_delete ON api.rotation_policies FOR DELETE TO app_user
    USING (vault_id IN (SELECT gate.member_vaults(ARRAY['owner', 'admin', 'editor'])));
CREATE POLICY rotation_policies_worker_select ON api.rotation_policies FOR SELECT TO authsvc USING (true);
CREATE POLICY rotation_policies_worker_update ON api.rotation_policies FOR UPDATE TO authsvc USING (true) WITH CHECK (true);

-- A new policy starts from the secret as the caller sees it (its vault, its
-- revision, the age of its value); the schedule follows the interval.
CREATE FUNCTION gate.rotation_policy_schedule() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT x.vault_id, x.revision, x.updated_at INTO s FROM api.secrets x WHERE x.id = NEW.secret_id;
        IF NOT FOUND OR s.vault_id IS DISTINCT FROM NEW.vault_id THEN
            RAISE EXCEPTION 'no such secret in this vault' USING ERRCODE = '23503';
        END IF;
        NEW.revision := s.revision;
        NEW.last_rotated_at := s.updated_at;
        NEW.last_rotated_revision := NULL;
        NEW.last_notified_due_at := NULL;
        NEW.created_by := gate.current_user_id();
        NEW.created_at := now();
        NEW.updated_at := now();
        NEW.next_due_at := NEW.last_rotated_at + make_interval(secs => NEW.interval_seconds);
    ELSIF NEW.interval_seconds IS DISTINCT FROM OLD.interval_seconds
       OR NEW.last_rotated_at IS DISTINCT FROM OLD.last_rotated_at THEN
        NEW.updated_at := now();
        NEW.next_due_at := NEW.last_rotated_at + make_interval(secs => NEW.interval_seconds);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER rotation_policies_schedule BEFORE INSERT OR UPDATE ON api.rotation_policies
    FOR EACH ROW EXECUTE FUNCTION gate.rotation_policy_schedule();

-- ---------------------------------------------------------------- the triggers

-- Secrets: created, updated, rotated (a new revision written through
-- api.rotate_secret), deleted. Secrets that go with their vault are not
-- reported one by one.
CREATE FUNCTION gate.secret_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = OLD.vault_id) THEN
            PERFORM gate.record_event(OLD.vault_id, 'secret.deleted', OLD.id, OLD.revision, NULL, NULL, NULL);
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM gate.record_event(NEW.vault_id, 'secret.created', NEW.id, NEW.revision, NULL, NULL, NULL);
    ELSIF current_setting('zsm.rotating_secret', true) = NEW.id::text THEN
        UPDATE api.rotation_policies p
           SET revision = NEW.revision, last_rotated_at = now(), last_rotated_revision = NEW.revision
         WHERE p.secret_id = NEW.id;
        PERFORM gate.record_event(NEW.vault_id, 'secret.rotated', NEW.id, NEW.revision, NULL, NULL, NULL);
    ELSE
        UPDATE api.rotation_policies p SET revision = NEW.revision WHERE p.secret_id = NEW.id;
        PERFORM gate.record_event(NEW.vault_id, 'secret.updated', NEW.id, NEW.revision, NULL, NULL, NULL);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER secrets_events AFTER INSERT OR UPDATE OR DELETE ON api.secrets
    FOR EACH ROW EXECUTE FUNCTION gate.secret_event();

CREATE FUNCTION gate.member_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM gate.record_event(NEW.vault_id, 'member.added', NULL, NULL, NEW.user_id, NEW.role, NULL);
    ELSIF EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = OLD.vault_id) THEN
        PERFORM gate.record_event(OLD.vault_id, 'member.removed', NULL, NULL, OLD.user_id, OLD.role, NULL);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER access_policies_events AFTER INSERT OR DELETE ON api.access_policies
    FOR EACH ROW EXECUTE FUNCTION gate.member_event();

-- Rotation done by the client: the new revision (encrypted by the client, as
-- always) and the policy's "rotated" mark in one transaction; the trigger
-- above records secret.rotated instead of secret.updated. SECURITY INVOKER:
-- the caller needs the rights of an ordinary update (editor or above).
-- Answers 409 when the secret changed meanwhile or is not the caller's to
-- change.
CREATE FUNCTION api.rotate_secret(secret_id uuid, revision bigint, ciphertext text) RETURNS json
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n    integer;
    due  timestamptz;
BEGIN
    PERFORM set_config('zsm.rotating_secret', rotate_secret.secret_id::text, true);
    UPDATE api.secrets s
       SET revision = rotate_secret.revision, ciphertext = rotate_secret.ciphertext
     WHERE s.id = rotate_secret.secret_id AND s.revision = rotate_secret.revision - 1;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('zsm.rotating_secret', '', true);
    IF n <> 1 THEN
        RAISE SQLSTATE 'PT409' USING MESSAGE = 'the secret changed meanwhile, or may not be changed by this account';
    END IF;
    SELECT p.next_due_at INTO due FROM api.rotation_policies p WHERE p.secret_id = rotate_secret.secret_id;
    RETURN json_build_object('secret_id', rotate_secret.secret_id, 'revision', rotate_secret.revision, 'next_due_at', due);
END
$$;
GRANT EXECUTE ON FUNCTION api.rotate_secret(uuid, bigint, text) TO app_user;
