#!/bin/sh
# One-shot service of docker-compose.yaml: forms the three-node Redis
# Cluster on first start (one master per node, no replicas) and, on every
# later start, waits until the nodes report cluster_state:ok again (they
# re-form from nodes.conf on their volumes). authsvc starts only after this
# exits 0. redis-cli resolves the service names itself (Redis 7+).
set -eu
REDISCLI_AUTH="$(cat "${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}")"
export REDISCLI_AUTH
nodes="${REDIS_CLUSTER_NODES:-redis-1:6379 redis-2:6379 redis-3:6379}"

field() { # field HOST:PORT NAME -> value of NAME in CLUSTER INFO
	redis-cli -h "${1%:*}" -p "${1##*:}" cluster info | tr -d '\r' | sed -n "s/^$2://p"
}

fresh=0
total=0
for n in $nodes; do
	total=$((total + 1))
	if [ "$(field "$n" cluster_known_nodes)" = 1 ] && [ "$(field "$n" cluster_slots_assigned)" = 0 ]; then
		fresh=$((fresh + 1))
	fi
done
if [ "$fresh" -eq "$total" ]; then
	echo "redis-cluster-init: forming the cluster from $nodes"
	# shellcheck disable=SC2086
	redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes
elif [ "$fresh" -ne 0 ]; then
	echo "redis-cluster-init: $fresh of $total nodes have no cluster state and the others do;" >&2
	echo "  repair by hand (redis-cli --cluster fix / add-node), see docs/deploy.md" >&2
	exit 1
fi

i=0
while :; do
	ok=0
	for n in $nodes; do
		if [ "$(field "$n" cluster_state)" = ok ] && [ "$(field "$n" cluster_known_nodes)" = "$total" ]; then
			ok=$((ok + 1))
		fi
	done
	if [ "$ok" -eq "$total" ]; then
		echo "redis-cluster-init: cluster_state:ok on all $total nodes"
		exit 0
	fi
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		echo "redis-cluster-init: the cluster is not ok after 60 s" >&2
		for n in $nodes; do redis-cli -h "${n%:*}" -p "${n##*:}" cluster info >&2 || true; done
		exit 1
	fi
	sleep 1
done
