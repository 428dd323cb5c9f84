-- Invitations and consent.
--
-- Anybody who owns a vault may grant a membership of it to any user id:
-- that is how sharing starts. The invitee did not ask for it, so a grant
-- signed by someone else is only an invitation to the client (shown with
-- who sent it, used for nothing) until it can be verified (docs/crypto.md
-- §4). The invitee may decline it, which deletes the grant and blocks the
-- granter: the insert policy of api.access_policies then refuses every
-- further grant from that granter to this invitee, until the invitee lifts
-- the block (deletes its row). Grants to other users are also counted per
-- granter and hour, so nobody can flood invitations.

-- ---------------------------------------------------------------- blocks

CREATE TABLE api.grant_blocks (
    user_id          uuid        NOT NULL DEFAULT gate.current_user_id(),  -- the invitee, who blocks
    blocked_user_id  uuid        NOT NULL,                                 -- the granter they refuse
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, blocked_user_id),
    CHECK (user_id <> blocked_user_id)
);
ALTER TABLE api.grant_blocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE api.grant_blocks FORCE ROW LEVEL SECURITY;
REVOKE ALL ON api.grant_blocks FROM PUBLIC;
-- The invitee reads, writes and lifts their own blocks, nobody else's; a
-- block cannot be changed, only lifted (deleted) and made anew.
GRANT SELECT, DELETE ON api.grant_blocks TO app_user;
GRANT INSERT (blocked_user_id) ON api.grant_blocks TO app_user;
CREATE POLICY grant_blocks_own_select ON api.grant_blocks FOR SELECT TO app_user
    USING (user_id = (SELECT gate.current_user_id()));
CREATE POLICY grant_blocks_own_insert ON api.grant_blocks FOR INSERT TO app_user
    WITH CHECK (user_id = (SELECT gate.current_user_id()));
CREATE POLICY grant_blocks_own_delete ON api.grant_blocks FOR DELETE TO app_user
    USING (user_id = (SELECT gate.current_user_id()));
CREATE POLICY grant_blocks_definer ON api.grant_blocks FOR SELECT TO authsvc USING (true);

-- Whether invitee has blocked the caller. SECURITY DEFINER so the insert
-- policy below can read another user's blocks; it answers only about
-- blocks against the caller itself, which a refused grant shows anyway.
CREATE FUNCTION gate.grant_blocked(invitee uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM api.grant_blocks b
                    WHERE b.user_id = invitee AND b.blocked_user_id = gate.current_user_id())
$$;
GRANT EXECUTE ON FUNCTION gate.grant_blocked(uuid) TO app_user;

-- The insert policy of 000005, plus: a grant to another user is refused
-- (403, 42501) when that user blocked the granter.
DROP POLICY access_policies_insert ON api.access_policies;
CREATE POLICY access_policies_insert ON api.access_policies FOR INSERT TO app_user
    WITH CHECK (
        granted_by = (SELECT gate.current_user_id())
        AND (
            (user_id = (SELECT gate.current_user_id()) AND role = 'owner'
             AND EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = vault_id AND v.owner_id = (SELECT gate.current_user_id())))
            OR gate.vault_role(vault_id) = 'owner'
            OR (gate.vault_role(vault_id) = 'admin' AND role IN ('editor', 'viewer'))
        )
        AND (user_id = (SELECT gate.current_user_id()) OR NOT gate.grant_blocked(user_id))
    );

-- ---------------------------------------------------------------- the rate of grants

ALTER TABLE auth.data_limits
    ADD COLUMN grants_per_hour integer NOT NULL DEFAULT 100 CHECK (grants_per_hour BETWEEN 1 AND 1000000);

-- Every grant to another user counts against its granter's hourly budget
-- (one row of a bulk insert is one grant); past it, the request ends with
-- 429 rate_limited and nothing is written. A creator's grant to itself is
-- free. SECURITY DEFINER: the counters are authsvc's.
CREATE FUNCTION gate.count_grant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me uuid := gate.current_user_id();
BEGIN
    IF me IS NOT NULL AND NEW.user_id IS DISTINCT FROM me THEN
        PERFORM gate.count_rate('grant', me, (SELECT l.grants_per_hour FROM auth.data_limits l));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER access_policies_count BEFORE INSERT ON api.access_policies
    FOR EACH ROW EXECUTE FUNCTION gate.count_grant();

-- ---------------------------------------------------------------- seeing and declining invitations

-- The caller's invitations: each grant naming the caller that somebody
-- else signed, with that granter's identity, so the invitee can tell who
-- invited them. SECURITY DEFINER to read auth.users; it cannot be turned
-- into a directory: it starts from grants naming the caller, and a grant's
-- granted_by is always the user who inserted it (the insert policy), who
-- thereby chose to make themselves known to the caller.
CREATE FUNCTION gate.invitations()
RETURNS TABLE (vault_id uuid, granted_by uuid, granted_by_identity text, role text, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.vault_id, p.granted_by, u.identity, p.role, p.created_at
      FROM api.access_policies p LEFT JOIN auth.users u ON u.id = p.granted_by
     WHERE p.user_id = gate.current_user_id() AND p.granted_by <> p.user_id
     ORDER BY p.created_at, p.vault_id
$$;
GRANT EXECUTE ON FUNCTION gate.invitations() TO app_user;

CREATE FUNCTION api.invitations()
RETURNS TABLE (vault_id uuid, granted_by uuid, granted_by_identity text, role text, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM gate.invitations() $$;
GRANT EXECUTE ON FUNCTION api.invitations() TO app_user;

-- Declines the caller's membership of vault_id that somebody else granted:
-- blocks that granter and deletes the grant, in one transaction, and
-- returns the granter's user id. SECURITY INVOKER: it does only what the
-- caller could do with two requests (the policies above allow both).
CREATE FUNCTION api.decline_invitation(vault_id uuid) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me  uuid := gate.current_user_id();
    g   uuid;
BEGIN
    SELECT p.granted_by INTO g FROM api.access_policies p
     WHERE p.vault_id = decline_invitation.vault_id AND p.user_id = me;
    IF NOT FOUND THEN
        RAISE SQLSTATE 'PT404' USING MESSAGE = 'no invitation to this vault';
    END IF;
    IF g = me THEN
        RAISE EXCEPTION 'this membership is your own; there is nothing to decline' USING ERRCODE = '22023';
    END IF;
    INSERT INTO api.grant_blocks (blocked_user_id) VALUES (g) ON CONFLICT DO NOTHING;
    DELETE FROM api.access_policies p WHERE p.vault_id = decline_invitation.vault_id AND p.user_id = me;
    RETURN g;
END
$$;
GRANT EXECUTE ON FUNCTION api.decline_invitation(uuid) TO app_user;
