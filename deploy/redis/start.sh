#!/bin/sh
# Starts one Redis Cluster node of docker-compose.yaml: writes the node's
# configuration (deploy/redis/redis.conf plus the password and announced
# hostname) into a private file and hands over to the image's entrypoint,
# which drops to the redis user. The password never appears on a command line.
set -eu
umask 077
pw="$(cat "${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}")"
case "$pw" in
'' | *[!A-Za-z0-9._~+/=-]*)
	echo "redis: the redis_password secret must be non-empty and use only A-Z a-z 0-9 . _ ~ + / = -" >&2
	exit 1
	;;
esac
: "${REDIS_NODE_HOSTNAME:?set REDIS_NODE_HOSTNAME to the service name}"
conf=/tmp/zsm-redis.conf
{
	cat /usr/local/etc/redis/redis.conf
	printf 'requirepass "%s"\nmasterauth "%s"\ncluster-announce-hostname "%s"\n' "$pw" "$pw" "$REDIS_NODE_HOSTNAME"
} > "$conf"
chown redis:redis "$conf"
exec docker-entrypoint.sh redis-server "$conf"
