-- Ids are never reused, and vault trails show members what they need.
--
-- 1. Clients choose the ids of vaults and secrets. Before this migration a
--    deleted vault's id could be created again by anybody, who then owned
--    its event trail (api.vault_events keeps events after the vault is
--    gone, and shows them to the vault's members): a removed member read
--    the owner's events, some written after the removal. Now a delete
--    retires the id for good (auth.retired_ids), and an insert with a
--    retired id is refused like any id that is taken.
-- 2. A taken id answers the same whether the row is live or retired, the
--    caller's or invisible to it: 409 with one body. What is left is the
--    fact "this id has been used", which the caller can only ask about an
--    id it already knows (docs/security.md).
-- 3. vault_events no longer shows session ids to the vault's members.

-- ---------------------------------------------------------------- retired ids

CREATE TABLE auth.retired_ids (
    id          uuid        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('vault', 'secret')),
    retired_at  timestamptz NOT NULL DEFAULT now()
);

-- Vaults and secrets deleted before this migration left their ids in the
-- event trail (and secrets in history that went with them): retire those.
INSERT INTO auth.retired_ids (id, kind)
SELECT DISTINCT e.vault_id, 'vault' FROM api.vault_events e
 WHERE NOT EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = e.vault_id)
ON CONFLICT DO NOTHING;
INSERT INTO auth.retired_ids (id, kind)
SELECT DISTINCT e.secret_id, 'secret' FROM api.vault_events e
 WHERE e.secret_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM api.secrets s WHERE s.id = e.secret_id)
ON CONFLICT DO NOTHING;

-- A deleted vault or secret (a secret also when its vault goes) retires its
-- id. SECURITY DEFINER: nobody else writes auth.retired_ids.
CREATE FUNCTION gate.retire_id() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO auth.retired_ids (id, kind)
    VALUES (OLD.id, CASE TG_TABLE_NAME WHEN 'vaults' THEN 'vault' ELSE 'secret' END)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER vaults_retire_id AFTER DELETE ON api.vaults
    FOR EACH ROW EXECUTE FUNCTION gate.retire_id();
CREATE TRIGGER secrets_retire_id AFTER DELETE ON api.secrets
    FOR EACH ROW EXECUTE FUNCTION gate.retire_id();

-- authsvc reads every secret inside the check below (it reads every vault
-- already, 000005).
CREATE POLICY secrets_definer ON api.secrets FOR SELECT TO authsvc USING (true);

-- Before an insert with a client-chosen id: an id that is retired, or taken
-- by a row the caller cannot see, is refused with 409 and one fixed body,
-- whichever it is. A conflict with a row the caller can see is left to
-- PostgreSQL as before (a plain 409, or the update of an upsert): the caller
-- knows its own rows. Runs before the row-level checks, so the answer does
-- not depend on whether the caller may write there at all.
--
-- SECURITY DEFINER to see rows the caller cannot; it reveals nothing but
-- the one bit described above, about an id the caller supplies.
CREATE FUNCTION gate.refuse_taken_id() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    visible boolean;
BEGIN
    IF EXISTS (SELECT 1 FROM auth.retired_ids r WHERE r.id = NEW.id) THEN
        visible := false;
    ELSIF TG_TABLE_NAME = 'vaults' THEN
        SELECT NEW.id IN (SELECT gate.member_vaults()) INTO visible
         WHERE EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = NEW.id);
    ELSE
        SELECT s.vault_id IN (SELECT gate.member_vaults()) INTO visible
          FROM api.secrets s WHERE s.id = NEW.id;
    END IF;
    IF visible IS NOT NULL AND NOT visible THEN
        RAISE EXCEPTION 'this id is taken; choose another (a new random uuid)'
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END
$$;
-- Named to run before the revision triggers (triggers fire in name order).
CREATE TRIGGER vaults_a_taken_id BEFORE INSERT ON api.vaults
    FOR EACH ROW EXECUTE FUNCTION gate.refuse_taken_id();
CREATE TRIGGER secrets_a_taken_id BEFORE INSERT ON api.secrets
    FOR EACH ROW EXECUTE FUNCTION gate.refuse_taken_id();

-- ---------------------------------------------------------------- what members see of a vault's trail

-- Members see what happened, to what and by whom (type, time, secret,
-- revision, acting user, member and role), never from which session: a
-- session id is the acting user's own business, and their own sessions
-- and what happened in them are in api.audit_events. The column stays for
-- authsvc and operators.
--
-- Readable, as before, only by present members of the vault (the policy
-- of 000008 through gate.member_vaults()); with ids never reused, nobody
-- becomes a member of a deleted vault by creating it again.
REVOKE SELECT ON api.vault_events FROM app_user;
GRANT SELECT (id, seq, created_at, vault_id, type, secret_id, revision, actor_id, member_id, role, webhook_id, due_at)
    ON api.vault_events TO app_user;
