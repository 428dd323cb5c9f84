-- Roles and schemas.
--
-- Roles are cluster-wide and outlive this database, so they are created only
-- when missing. authenticator is the only role PostgREST logs in as; it is
-- NOINHERIT, so on its own it can do nothing until PostgREST switches to the
-- role named in a verified JWT (app_user) or to anon.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        CREATE ROLE app_user NOLOGIN NOINHERIT;
    END IF;
END
$$;

GRANT anon, app_user TO authenticator;

-- Nothing reachable through PostgREST may run long or take the whole pool.
ALTER ROLE app_user SET statement_timeout = '5s';
ALTER ROLE anon SET statement_timeout = '1s';

-- New functions are not executable by everybody: every EXECUTE is granted on
-- purpose, to a named role.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- auth: authsvc's own tables. PostgREST's roles get no privilege here at all,
-- not even USAGE.
CREATE SCHEMA auth;
REVOKE ALL ON SCHEMA auth FROM PUBLIC;

-- gate: the functions PostgREST calls around a request (db-pre-request) and the
-- helper every RLS policy uses to know the caller. Not exposed as an API
-- schema, so nothing here is reachable as /rpc/….
CREATE SCHEMA gate;
REVOKE ALL ON SCHEMA gate FROM PUBLIC;
GRANT USAGE ON SCHEMA gate TO anon, app_user;

-- api: the only schema PostgREST exposes (db-schemas = "api").
CREATE SCHEMA api;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO anon, app_user;
