#!/bin/sh
# Database setup for docker-compose.yaml, run as the PostgreSQL superuser by
# two one-shot services (image postgres, this file mounted read-only). Both
# steps are idempotent and run on every `docker compose up`, so a changed
# password secret takes effect on the next start. They do what the local
# stack runner does in stack/start.go (bootstrap, setAuthenticatorPassword).
#
#   zsm-db.sh bootstrap   before migrations: role authsvc (LOGIN CREATEROLE,
#                         password from the authsvc_database_url secret),
#                         database zsm owned by it, and the one grant that
#                         needs a superuser: SET on parameter pgrst.jwt_secret
#   zsm-db.sh roles       after migrations: the password of role authenticator
#                         (created by the migrations) from postgrest_db_uri
#
# Environment: PGHOST, PGPORT (default postgres:5432), POSTGRES_PASSWORD_FILE,
# AUTHSVC_DATABASE_URL_FILE, POSTGREST_DB_URI_FILE. Passwords travel in psql
# variables read from the files, never on a command line.
set -eu
umask 077

export PGHOST="${PGHOST:-postgres}" PGPORT="${PGPORT:-5432}" PGUSER=postgres
PGPASSWORD="$(cat "${POSTGRES_PASSWORD_FILE:-/run/secrets/postgres_password}")"
export PGPASSWORD

# url_password FILE: the password of a postgres://user:password@host/... URL.
# Only URL-safe characters are accepted, so no percent-decoding is needed.
url_password() {
	pw="$(sed -n 's#^postgres\(ql\)\{0,1\}://[^:/@]*:\([^@]*\)@.*$#\2#p' "$1")"
	if [ -z "$pw" ]; then
		echo "zsm-db: $1 is not a postgres://user:password@host:port/db URL" >&2
		exit 1
	fi
	case "$pw" in
	*[!A-Za-z0-9._~-]*)
		echo "zsm-db: the password in $1 may contain only A-Z a-z 0-9 . _ ~ - (use go run ./deploy/gensecrets)" >&2
		exit 1
		;;
	esac
	printf '%s' "$pw"
}

wait_for_postgres() {
	i=0
	until pg_isready -q -d postgres; do
		i=$((i + 1))
		if [ "$i" -ge 60 ]; then
			echo "zsm-db: PostgreSQL at $PGHOST:$PGPORT is not ready after 60 s" >&2
			exit 1
		fi
		sleep 1
	done
}

case "${1:-}" in
bootstrap)
	url_password "${AUTHSVC_DATABASE_URL_FILE:-/run/secrets/authsvc_database_url}" > /tmp/zsm-authsvc-pw
	wait_for_postgres
	psql -v ON_ERROR_STOP=1 -q -d postgres <<'SQL'
\set pw `cat /tmp/zsm-authsvc-pw`
SELECT 'CREATE ROLE authsvc' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authsvc') \gexec
SELECT format('ALTER ROLE authsvc WITH LOGIN CREATEROLE NOSUPERUSER PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE zsm OWNER authsvc ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'zsm') \gexec
-- authsvc publishes its JWKS with ALTER ROLE authenticator SET pgrst.jwt_secret (sql/embed.go).
GRANT SET ON PARAMETER pgrst.jwt_secret TO authsvc;
SQL
	rm -f /tmp/zsm-authsvc-pw
	echo "zsm-db: role authsvc and database zsm are ready"
	;;
roles)
	url_password "${POSTGREST_DB_URI_FILE:-/run/secrets/postgrest_db_uri}" > /tmp/zsm-authenticator-pw
	wait_for_postgres
	psql -v ON_ERROR_STOP=1 -q -d zsm <<'SQL'
\set pw `cat /tmp/zsm-authenticator-pw`
-- Fails (role "authenticator" does not exist) unless `authsvc migrate up` ran.
SELECT format('ALTER ROLE authenticator PASSWORD %L', :'pw') \gexec
SQL
	rm -f /tmp/zsm-authenticator-pw
	echo "zsm-db: role authenticator has its password"
	;;
*)
	echo "usage: zsm-db.sh bootstrap|roles" >&2
	exit 2
	;;
esac
