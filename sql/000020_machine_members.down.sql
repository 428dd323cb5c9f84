-- Back to 000019: no machine tokens among the member keys.

CREATE OR REPLACE FUNCTION api.lookup_identity(identity text)
RETURNS TABLE (user_id uuid, x25519_public text, ed25519_public text,
               key_record_version smallint, key_record_signature text, xwing_public text)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM gate.lookup_identity(lookup_identity.identity) $$;

DROP POLICY IF EXISTS pins_no_machine ON api.pins;
DROP POLICY IF EXISTS vault_key_chain_no_machine ON api.vault_key_chain;
DROP POLICY IF EXISTS vault_log_no_machine ON api.vault_log;

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
     ORDER BY u.id
$$;
