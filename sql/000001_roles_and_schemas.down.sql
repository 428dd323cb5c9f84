DROP SCHEMA IF EXISTS api CASCADE;
DROP SCHEMA IF EXISTS gate CASCADE;
DROP SCHEMA IF EXISTS auth CASCADE;

ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;

-- The roles may be shared with other databases of the cluster; drop them only
-- when nothing else refers to them.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['authenticator', 'app_user', 'anon'] LOOP
        BEGIN
            EXECUTE format('DROP ROLE IF EXISTS %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % kept: still in use', r;
        END;
    END LOOP;
END
$$;
