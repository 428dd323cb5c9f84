-- Machine tokens among the members of shared vaults (docs/auth.md "Machine
-- tokens", docs/crypto.md §13):
--
-- 1. api.vault_member_keys also answers the key records of the machine
--    tokens the caller's vaults name, so that every member can replay a
--    log that adds a token, seal new key generations to it and check the
--    manifests it signs as an editor.
-- 2. A machine never appends to a membership log (it neither adds,
--    removes nor leaves), never stores older vault keys, never has pins,
--    and never looks up identities.

CREATE OR REPLACE FUNCTION gate.vault_member_keys()
RETURNS TABLE (user_id uuid, identity text, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH mine AS (SELECT gate.member_vaults() AS vault_id),
    named AS (
        SELECT l.subject_id AS u FROM api.vault_log l WHERE l.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT l.signer_id FROM api.vault_log l WHERE l.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT p.user_id FROM api.access_policies p WHERE p.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT p.granted_by FROM api.access_policies p WHERE p.vault_id IN (SELECT vault_id FROM mine)
        UNION SELECT v.owner_id FROM api.vaults v WHERE v.id IN (SELECT vault_id FROM mine)
    )
    SELECT u.id, u.identity, k.x25519_public, k.ed25519_public, k.key_record_version, k.key_record_signature, k.xwing_public
      FROM named JOIN auth.users u ON u.id = named.u JOIN api.public_keys k ON k.user_id = u.id
    UNION ALL
    -- Machine tokens the logs name, revoked ones too (their entries stay in
    -- the logs): a version 2 record with the identity "token:" || id.
    SELECT m.id, 'token:' || m.id::text, m.x25519_public, m.ed25519_public, 2::smallint, m.key_record_signature, m.xwing_public
      FROM named JOIN auth.machine_tokens m ON m.id = named.u
     ORDER BY 1
$$;

CREATE POLICY vault_log_no_machine ON api.vault_log AS RESTRICTIVE FOR INSERT TO app_user
    WITH CHECK (NOT (SELECT gate.is_machine()));
CREATE POLICY vault_key_chain_no_machine ON api.vault_key_chain AS RESTRICTIVE FOR INSERT TO app_user
    WITH CHECK (NOT (SELECT gate.is_machine()));
CREATE POLICY pins_no_machine ON api.pins AS RESTRICTIVE FOR ALL TO app_user
    USING (NOT (SELECT gate.is_machine())) WITH CHECK (NOT (SELECT gate.is_machine()));

CREATE OR REPLACE FUNCTION api.lookup_identity(identity text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gate.refuse_machine();
    SELECT * FROM gate.lookup_identity(lookup_identity.identity);
$$;
