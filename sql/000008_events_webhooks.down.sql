-- Dropping a table is not an UPDATE, DELETE or TRUNCATE: the append-only
-- trigger of api.vault_events goes with it.
DROP FUNCTION IF EXISTS api.rotate_secret(uuid, bigint, text);
DROP TRIGGER IF EXISTS access_policies_events ON api.access_policies;
DROP FUNCTION IF EXISTS gate.member_event();
DROP TRIGGER IF EXISTS secrets_events ON api.secrets;
DROP FUNCTION IF EXISTS gate.secret_event();

DROP TABLE IF EXISTS api.rotation_policies;
DROP FUNCTION IF EXISTS gate.rotation_policy_schedule();

DROP FUNCTION IF EXISTS api.test_webhook(uuid);
DROP FUNCTION IF EXISTS api.create_webhook(uuid, text, text[]);
DROP FUNCTION IF EXISTS gate.test_webhook(uuid);
DROP FUNCTION IF EXISTS gate.create_webhook(uuid, text, text[]);
DROP FUNCTION IF EXISTS gate.check_webhook_url(text);
DROP FUNCTION IF EXISTS gate.address_refused(inet, cidr[]);

DROP TABLE IF EXISTS api.webhook_attempts;
DROP TABLE IF EXISTS api.webhook_deliveries;
DROP TABLE IF EXISTS api.webhooks;
DROP FUNCTION IF EXISTS gate.webhook_state();

DROP TABLE IF EXISTS api.vault_events;
DROP FUNCTION IF EXISTS gate.record_event(uuid, text, uuid, bigint, uuid, text, uuid);
DROP FUNCTION IF EXISTS gate.fan_out_event();
DROP FUNCTION IF EXISTS gate.vault_events_append_only();
DROP FUNCTION IF EXISTS gate.current_session_id();

DROP TABLE IF EXISTS auth.webhook_policy;
