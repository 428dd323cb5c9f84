DROP POLICY access_policies_delete ON api.access_policies;
CREATE POLICY access_policies_delete ON api.access_policies FOR DELETE TO app_user
    USING (user_id = (SELECT gate.current_user_id()) OR vault_id IN (SELECT gate.member_vaults(ARRAY['owner'])));

DROP FUNCTION api.vault_member_keys();
DROP FUNCTION gate.vault_member_keys();
DROP TABLE api.vault_log;
DROP FUNCTION gate.vault_log_append_only();
DROP FUNCTION gate.vault_log_entry();
DROP FUNCTION gate.may_append(uuid, smallint, uuid, text);
DROP FUNCTION gate.member_role(uuid, uuid);
