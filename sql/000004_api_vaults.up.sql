-- Vaults: for now owner-only. Names and everything else a user writes about a
-- vault live in `meta`, an envelope the client encrypted; the server sees an
-- id, an owner, sizes and times.
CREATE TABLE api.vaults (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid        NOT NULL DEFAULT gate.current_user_id(),
    meta        text        NOT NULL DEFAULT '' CHECK (octet_length(meta) <= 16384),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vaults_owner_id_idx ON api.vaults (owner_id);

-- FORCE makes the policies bind the owner (authsvc) too; nothing bypasses them
-- but a superuser.
ALTER TABLE api.vaults ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.vaults FORCE ROW LEVEL SECURITY;

-- Column grants: a caller may choose an id and write meta, never owner_id or
-- the timestamps, so a row cannot be handed to somebody else.
GRANT SELECT, DELETE ON api.vaults TO app_user;
GRANT INSERT (id, meta) ON api.vaults TO app_user;
GRANT UPDATE (meta) ON api.vaults TO app_user;

CREATE POLICY vaults_owner_select ON api.vaults FOR SELECT TO app_user
    USING (owner_id = (SELECT gate.current_user_id()));
CREATE POLICY vaults_owner_insert ON api.vaults FOR INSERT TO app_user
    WITH CHECK (owner_id = (SELECT gate.current_user_id()));
CREATE POLICY vaults_owner_update ON api.vaults FOR UPDATE TO app_user
    USING (owner_id = (SELECT gate.current_user_id()))
    WITH CHECK (owner_id = (SELECT gate.current_user_id()));
CREATE POLICY vaults_owner_delete ON api.vaults FOR DELETE TO app_user
    USING (owner_id = (SELECT gate.current_user_id()));

CREATE FUNCTION gate.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER vaults_touch BEFORE UPDATE ON api.vaults
    FOR EACH ROW EXECUTE FUNCTION gate.touch_updated_at();
