#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_kv_twemproxy.sh - twemproxy (nutcracker) sharding keys over three paste-kv nodes (not in
# cluster mode): two on kernel sockets (the server namespace's address, ports 7101 and 7102) and one
# on the paste transport (the stack's address, port 6379). nutcracker runs in the client namespace
# with the configuration docs/paste-kv.md shows (ketama over fnv1a_64, redis: true). Checks
# (kv_cluster_tool.py proxy): 600 keys written and read back through the proxy (SET/GET, HSET/
# HGETALL, MGET, INCR, DEL); each key is on exactly one backend, asked directly, and every backend
# holds a share; the backends' DBSIZEs add up. Then the paste-transport node is restarted on its
# pool and every key reads back through the proxy again (durable on the node the proxy chose).
# About 15 s.
. "$(dirname "$0")/lib.sh"
testbed_up

TOOL=$PASTE_SRC/tests/integration/kv_cluster_tool.py
PASTE_KV=$PASTE_BUILD/paste-kv
[ -x "$PASTE_KV" ] || fail "$PASTE_KV not built"
command -v nutcracker >/dev/null || fail "nutcracker (twemproxy) not installed (scripts/deps)"

KV_PIDS=()
# start_node N ARGS...: paste-kv in the server namespace, pool /dev/shm/paste-test-$$-N.pool.
start_node() {
	local n=$1 log=$LOGDIR/kv$1.log pid i
	shift
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$n.pool")
	ip netns exec "$NS_SRV" "$PASTE_KV" "$@" --pool "/dev/shm/paste-test-$$-$n.pool" \
		--pool-size 64M >>"$log" 2>&1 &
	pid=$!
	track_pid "$pid"
	KV_PIDS[n]=$pid
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		[ "$(grep -c '^paste-kv: ready' "$log")" -ge "${READY_N[n]:-1}" ] && return 0
		kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; fail "paste-kv $n exited before it was ready"; }
		sleep 0.1
	done
	fail "paste-kv $n not ready after ${READY_TIMEOUT}s"
}
declare -a READY_N
NODE1=(--transport kernel --ip "$SRV_IP" --port 7101)
NODE2=(--transport kernel --ip "$SRV_IP" --port 7102)
NODE3=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port 6379)
start_node 1 "${NODE1[@]}"
start_node 2 "${NODE2[@]}"
start_node 3 "${NODE3[@]}"

# not in cluster mode: the cluster commands are refused as redis-server refuses them
v=$(in_cli redis-cli -h "$SRV_IP" -p 7101 CLUSTER INFO)
[ "$v" = "ERR This instance has cluster support disabled" ] || fail "CLUSTER INFO without cluster mode: '$v'"
in_cli redis-cli -h "$STACK_IP" -p 6379 INFO cluster | tr -d '\r' | grep -qx 'cluster_enabled:0' ||
	fail "INFO cluster without cluster mode does not say cluster_enabled:0"

CONF=$LOGDIR/nutcracker.yml
cat >"$CONF" <<EOF
paste:
  listen: $CLI_IP:22121
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  timeout: 5000
  servers:
   - $SRV_IP:7101:1 kv1
   - $SRV_IP:7102:1 kv2
   - $STACK_IP:6379:1 kv3
EOF
nutcracker -t -c "$CONF" >"$LOGDIR/nutcracker-t.log" 2>&1 || { cat "$LOGDIR/nutcracker-t.log" >&2; fail "nutcracker -t refused the configuration"; }
ip netns exec "$NS_CLI" nutcracker -c "$CONF" -o "$LOGDIR/nutcracker.log" -s 22222 -a "$CLI_IP" \
	-p "$LOGDIR/nutcracker.pid" &
NC_PID=$!
track_pid "$NC_PID"
for ((i = 0; i < 100; i++)); do
	in_cli python3 -c "import socket; socket.create_connection(('$CLI_IP', 22121), 1)" 2>/dev/null && break
	kill -0 "$NC_PID" 2>/dev/null || { cat "$LOGDIR/nutcracker.log" >&2; fail "nutcracker exited"; }
	sleep 0.1
done

in_cli python3 "$TOOL" proxy "$CLI_IP:22121" tw 600 "$SRV_IP:7101" "$SRV_IP:7102" "$STACK_IP:6379" \
	>"$LOGDIR/proxy.txt" 2>&1 || { cat "$LOGDIR/proxy.txt" >&2; fail "sharding through twemproxy failed"; }
log "$(tail -n 1 "$LOGDIR/proxy.txt")"

# restart the paste-transport node on its pool: the keys the proxy put there come back
kill_pid "${KV_PIDS[3]}"
untrack_pid "${KV_PIDS[3]}"
grep -q 'paste-kv: clean shutdown' "$LOGDIR/kv3.log" || fail "paste-kv 3 did not shut down cleanly"
READY_N[3]=2
start_node 3 "${NODE3[@]}"
k3=$(in_cli redis-cli -h "$STACK_IP" -p 6379 RANDOMKEY) # a key the proxy put on node 3
[[ $k3 == tw:* ]] || fail "paste-kv 3 lost its keys over the restart (RANDOMKEY: '$k3')"
for ((i = 0; i < 100; i++)); do # nutcracker reconnects to the backend on the next request
	t=$(in_cli redis-cli -h "$CLI_IP" -p 22121 TYPE "$k3" 2>/dev/null || true)
	[ "$t" = string ] || [ "$t" = hash ] && break
	sleep 0.1
done
in_cli python3 "$TOOL" proxycheck "$CLI_IP:22121" tw 600 >"$LOGDIR/proxycheck.txt" 2>&1 ||
	{ cat "$LOGDIR/proxycheck.txt" >&2; fail "keys lost after restarting a backend"; }
log "after restarting the paste-transport backend: $(tail -n 1 "$LOGDIR/proxycheck.txt")"
kill_pid "$NC_PID"
for n in 1 2 3; do
	kill_pid "${KV_PIDS[n]}"
	grep -q 'paste-kv: clean shutdown' "$LOGDIR/kv$n.log" || fail "paste-kv $n did not shut down cleanly"
done
