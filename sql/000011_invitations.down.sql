DROP FUNCTION IF EXISTS api.decline_invitation(uuid);
DROP FUNCTION IF EXISTS api.invitations();
DROP FUNCTION IF EXISTS gate.invitations();

DROP TRIGGER IF EXISTS access_policies_count ON api.access_policies;
DROP FUNCTION IF EXISTS gate.count_grant();
DELETE FROM auth.rate_counters WHERE bucket = 'grant';
ALTER TABLE auth.data_limits DROP COLUMN IF EXISTS grants_per_hour;

-- The insert policy of 000005.
DROP POLICY IF EXISTS access_policies_insert ON api.access_policies;
CREATE POLICY access_policies_insert ON api.access_policies FOR INSERT TO app_user
    WITH CHECK (
        granted_by = (SELECT gate.current_user_id())
        AND (
            (user_id = (SELECT gate.current_user_id()) AND role = 'owner'
             AND EXISTS (SELECT 1 FROM api.vaults v WHERE v.id = vault_id AND v.owner_id = (SELECT gate.current_user_id())))
            OR gate.vault_role(vault_id) = 'owner'
            OR (gate.vault_role(vault_id) = 'admin' AND role IN ('editor', 'viewer'))
        )
    );
DROP FUNCTION IF EXISTS gate.grant_blocked(uuid);
DROP TABLE IF EXISTS api.grant_blocks;
