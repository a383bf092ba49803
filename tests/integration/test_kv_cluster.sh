#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_kv_cluster.sh - paste-kv's cluster mode: 3 nodes started by scripts/kv-cluster, on kernel
# sockets (inside this test's server namespace, 127.0.0.1:7001-7003) and on the paste transport (a
# testbed of kv-cluster's own, named after this test's PID). For each:
#   - redis-cli --cluster check passes (all slots covered, all nodes agree);
#   - redis-cli -c follows -MOVED: keys written at one node read back at another;
#   - 400 keys written through the cluster are each on the node serving their slot (asked
#     directly), COUNTKEYSINSLOT/GETKEYSINSLOT agree (kv_cluster_tool.py check);
#   - -CROSSSLOT for multi-key commands and MULTI/EXEC over slots, hash tags (kv_cluster_tool.py);
#   - redis-benchmark --cluster runs with no error;
#   - INFO shows cluster_enabled:1, CLUSTER INFO cluster_state:ok.
# Kernel part only: CLUSTER KEYSLOT of 2000 keys equals a real redis-server's (cluster-enabled,
# in the server namespace), and the offline slot move (kv-cluster down, map edited, up,
# scripts/kv-slot-move) leaves every key readable at its new owner. About 30 s.
. "$(dirname "$0")/lib.sh"
testbed_up

KVC=$PASTE_SRC/scripts/kv-cluster
MOVE=$PASTE_SRC/scripts/kv-slot-move
TOOL=$PASTE_SRC/tests/integration/kv_cluster_tool.py
[ -x "$PASTE_BUILD/paste-kv" ] || fail "$PASTE_BUILD/paste-kv not built"
command -v redis-cli >/dev/null || fail "redis-cli not installed (scripts/deps)"
command -v redis-benchmark >/dev/null || fail "redis-benchmark not installed (scripts/deps)"
command -v redis-server >/dev/null || fail "redis-server not installed (scripts/deps)"

KNAME=k$$ PNAME=p$$ # kv-cluster's --name: pools /dev/shm/NAME-I.pool, namespaces NAME-cli/-srv
KSTATE=$LOGDIR/kernel PSTATE=$LOGDIR/paste

# Stop both clusters (kv-cluster down: by PID; namespaces of the paste one), then lib.sh's cleanup.
cluster_cleanup() {
	local rc=$1
	in_srv "$KVC" down --name "$KNAME" --state "$KSTATE" --wipe >/dev/null 2>&1 || true
	"$KVC" down --name "$PNAME" --state "$PSTATE" --wipe >/dev/null 2>&1 || true
	(exit "$rc")
	cleanup
}
trap 'cluster_cleanup $?' EXIT
# what a killed earlier run of this test left: its paste-transport namespaces and pools
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^p[0-9]+-(cli|srv)$' || true); do
	pid=${ns%-*}
	pid=${pid#p}
	kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
for f in /dev/shm/[kp][0-9]*-*.pool; do
	[[ ${f#/dev/shm/} =~ ^[kp]([0-9]+)-([0-9]+|bad)\.pool$ ]] || continue
	kill -0 "${BASH_REMATCH[1]}" 2>/dev/null || rm -f -- "$f"
done

# cluster_checks RUN NODE1 NODE2 NODE3 TAG: the checks every transport gets. RUN runs a command
# where the clients are (a namespace).
cluster_checks() {
	local run=$1 n1=$2 n2=$3 n3=$4 tag=$5 out v
	out=$($run redis-cli --cluster check "$n1" 2>&1) || { echo "$out" >&2; fail "$tag: redis-cli --cluster check failed"; }
	echo "$out" >"$LOGDIR/check.$tag.txt"
	grep -q 'All nodes agree about slots configuration' <<<"$out" || fail "$tag: nodes disagree: $out"
	grep -q 'All 16384 slots covered' <<<"$out" || fail "$tag: slots not covered: $out"
	[ "$(grep -c 'M: [0-9a-f]\{40\} ' <<<"$out")" = 3 ] || fail "$tag: --cluster check does not list 3 masters"
	log "$tag: redis-cli --cluster check: $(grep -c OK <<<"$out") OK lines, no error"

	# redis-cli -c: written at node 1, read at node 3 (foo: slot 12182, bar: 5061, baz: 4813)
	for k in foo bar baz '{t}x'; do
		v=$($run redis-cli -c -h "${n1%:*}" -p "${n1##*:}" SET "$k" "val-$k")
		[ "$v" = OK ] || fail "$tag: redis-cli -c SET $k at $n1: $v"
		v=$($run redis-cli -c -h "${n3%:*}" -p "${n3##*:}" GET "$k")
		[ "$v" = "val-$k" ] || fail "$tag: redis-cli -c GET $k at $n3: '$v'"
	done
	v=$($run redis-cli -h "${n1%:*}" -p "${n1##*:}" GET foo)
	[ "$v" = "MOVED 12182 ${n3}" ] || fail "$tag: GET foo at $n1 without -c: '$v', expected MOVED 12182 $n3"
	for k in foo bar baz '{t}x'; do
		$run redis-cli -c -h "${n1%:*}" -p "${n1##*:}" DEL "$k" >/dev/null
	done
	log "$tag: redis-cli -c follows MOVED"

	$run python3 "$TOOL" load "$n1" "$tag" 400 >"$LOGDIR/load.$tag.txt" 2>&1 ||
		{ cat "$LOGDIR/load.$tag.txt" >&2; fail "$tag: load through the cluster failed"; }
	$run python3 "$TOOL" check "$tag" 400 "$n1" "$n2" "$n3" >"$LOGDIR/data.$tag.txt" 2>&1 ||
		{ cat "$LOGDIR/data.$tag.txt" >&2; fail "$tag: keys not on their owners"; }
	log "$tag: $(cat "$LOGDIR/load.$tag.txt"); $(cat "$LOGDIR/data.$tag.txt")"
	$run python3 "$TOOL" crossslot "$n2" >"$LOGDIR/cross.$tag.txt" 2>&1 ||
		{ cat "$LOGDIR/cross.$tag.txt" >&2; fail "$tag: CROSSSLOT/hash tag checks failed"; }
	log "$tag: $(cat "$LOGDIR/cross.$tag.txt")"

	v=$($run redis-cli -h "${n2%:*}" -p "${n2##*:}" INFO cluster | tr -d '\r')
	grep -qx 'cluster_enabled:1' <<<"$v" || fail "$tag: INFO cluster: $v"
	v=$($run redis-cli -h "${n2%:*}" -p "${n2##*:}" CLUSTER INFO | tr -d '\r')
	grep -qx 'cluster_state:ok' <<<"$v" && grep -qx 'cluster_known_nodes:3' <<<"$v" ||
		fail "$tag: CLUSTER INFO: $v"
}

# bench RUN NODE1 TAG: redis-benchmark --cluster, no error (after the data checks: it adds keys).
bench() {
	local run=$1 n1=$2 tag=$3 out
	out=$($run timeout 120 redis-benchmark --cluster -h "${n1%:*}" -p "${n1##*:}" \
		-t set,get,incr,lpush,mset -n 6000 -c 12 -r 10000 -q 2>&1) ||
		{ echo "$out" >&2; fail "$tag: redis-benchmark --cluster exited with an error"; }
	echo "$out" >"$LOGDIR/bench.$tag.txt"
	! grep -qiE 'error|moved|crossslot|ask ' <<<"$out" || { echo "$out" >&2; fail "$tag: redis-benchmark reported errors"; }
	[ "$(tr '\r' '\n' <<<"$out" | grep -c ' requests per second')" -ge 5 ] ||
		{ echo "$out" >&2; fail "$tag: redis-benchmark did not finish its 5 tests"; }
	log "$tag: redis-benchmark --cluster: $(tr '\r' '\n' <<<"$out" | grep ' requests per second' | sed 's/, p50.*//' | tr '\n' ';')"
}

# clean STATE: every node of the cluster in STATE shut down cleanly (and ASan found nothing)
clean() {
	local f
	for f in "$1"/node*.log; do
		grep -q '^paste-kv: clean shutdown' "$f" || { tail -n 20 "$f" >&2; fail "$f: no clean shutdown"; }
	done
}

# up STATE NAME ARGS...: kv-cluster up, its "node ADDR:PORT" lines into NODES.
NODES=()
up() {
	local out
	out=$("$@" 2>"$LOGDIR/up.err") || { cat "$LOGDIR/up.err" >&2; fail "kv-cluster up failed: $*"; }
	mapfile -t NODES < <(sed -n 's/^node //p' <<<"$out")
	[ "${#NODES[@]}" = 3 ] || fail "kv-cluster up printed ${#NODES[@]} node lines, expected 3: $out"
	for f in "$KSTATE"/node*.pid "$PSTATE"/node*.pid; do # lib.sh kills them if this test dies
		[ -e "$f" ] && track_pid "$(cat "$f")"
	done
	return 0
}

# ---- kernel sockets, in this test's server namespace -----------------------------------------
up in_srv "$KVC" up --nodes 3 --transport kernel --name "$KNAME" --state "$KSTATE" --pool-size 64M
[ "${NODES[*]}" = "127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003" ] || fail "kernel nodes: ${NODES[*]}"

in_srv "$KVC" status --name "$KNAME" --state "$KSTATE" >"$LOGDIR/status.txt" ||
	fail "kv-cluster status: $(cat "$LOGDIR/status.txt")"
[ "$(grep -c ' running pid ' "$LOGDIR/status.txt")" = 3 ] || fail "kv-cluster status: $(cat "$LOGDIR/status.txt")"

# a bad map stops paste-kv with a message naming the line
BAD=$LOGDIR/bad.conf
printf 'node %s 127.0.0.1 7011 0-100\nnode %s 127.0.0.1 7012 100-200\n' \
	1111111111111111111111111111111111111111 2222222222222222222222222222222222222222 >"$BAD"
rc=0
in_srv "$PASTE_BUILD/paste-kv" --transport kernel --port 7011 --pool "/dev/shm/$KNAME-bad.pool" \
	--pool-size 64M --cluster-config "$BAD" >"$LOGDIR/bad.log" 2>&1 || rc=$?
[ ! -e "/dev/shm/$KNAME-bad.pool" ] || { rm -f "/dev/shm/$KNAME-bad.pool"; fail "a bad map still created the pool"; }
[ "$rc" = 1 ] && grep -q "bad.conf:2: slot 100 is already served by node 1111111111111111111111111111111111111111 (line 1)" "$LOGDIR/bad.log" ||
	{ cat "$LOGDIR/bad.log" >&2; fail "paste-kv with a map naming slot 100 twice: exit $rc"; }

# our CRC16 against redis-server's (cluster-enabled: CLUSTER KEYSLOT needs it)
mkdir -p "$LOGDIR/redis"
ip netns exec "$NS_SRV" redis-server --port 7999 --bind 127.0.0.1 --cluster-enabled yes --save '' --appendonly no \
	--dir "$LOGDIR/redis" --cluster-config-file "$LOGDIR/redis/nodes.conf" >"$LOGDIR/redis.log" 2>&1 &
RS_PID=$!
track_pid "$RS_PID"
for ((i = 0; i < 100; i++)); do
	[ "$(in_srv redis-cli -p 7999 PING 2>/dev/null)" = PONG ] && break
	sleep 0.1
done
in_srv python3 "$TOOL" keyslot 127.0.0.1:7001 127.0.0.1:7999 2000 >"$LOGDIR/keyslot.txt" 2>&1 ||
	{ cat "$LOGDIR/keyslot.txt" >&2; fail "CLUSTER KEYSLOT differs from redis-server's"; }
log "$(cat "$LOGDIR/keyslot.txt")"
kill_pid "$RS_PID"
untrack_pid "$RS_PID"

cluster_checks in_srv "${NODES[@]}" kernel

# offline slot move: slots 0-999 of node 1 go to node 2; kv-slot-move moves their keys
in_srv "$KVC" down --name "$KNAME" --state "$KSTATE" >/dev/null || fail "kv-cluster down failed"
clean "$KSTATE"
sed -i -e 's/ 0-5460$/ 1000-5460/' -e 's/ 5461-10921$/ 0-999 5461-10921/' "$KSTATE/cluster.conf"
up in_srv "$KVC" up --name "$KNAME" --state "$KSTATE"
grep -q 'keys here belong to slots node .*127.0.0.1:7002' "$KSTATE/node1.log" || fail "node 1 did not report keys of moved slots"
moved=$(in_srv "$MOVE" 127.0.0.1:7001) || fail "kv-slot-move 127.0.0.1:7001 failed: $moved"
log "slot move: $(tr "\n" ";" <<<"$moved")"
grep -q '^moved [1-9][0-9]* keys to 127.0.0.1:7002' <<<"$moved" || fail "kv-slot-move moved nothing: $moved"
for n in 127.0.0.1:7002 127.0.0.1:7003; do
	out=$(in_srv "$MOVE" "$n") && grep -q '^total 0 keys' <<<"$out" || fail "kv-slot-move $n: $out"
done
in_srv python3 "$TOOL" check kernel 400 "${NODES[@]}" >"$LOGDIR/data.moved.txt" 2>&1 ||
	{ cat "$LOGDIR/data.moved.txt" >&2; fail "after the slot move, keys are not on their owners"; }
log "after the slot move: $(cat "$LOGDIR/data.moved.txt")"
in_srv redis-cli --cluster check 127.0.0.1:7001 >"$LOGDIR/check.moved.txt" 2>&1 ||
	fail "redis-cli --cluster check after the slot move failed"
bench in_srv 127.0.0.1:7001 kernel
in_srv "$KVC" down --name "$KNAME" --state "$KSTATE" --wipe >/dev/null || fail "kv-cluster down failed"
clean "$KSTATE"
for f in "$KSTATE"/node*.pid; do [ -e "$f" ] && fail "kv-cluster down left $f"; done
[ -z "$(ls /dev/shm/"$KNAME"-* 2>/dev/null)" ] || fail "kv-cluster down --wipe left pools"

# ---- paste transport: kv-cluster's own testbed --------------------------------------------------
up "$KVC" up --nodes 3 --transport paste --name "$PNAME" --state "$PSTATE" --pool-size 64M
[ "${NODES[*]}" = "10.78.1.3:7001 10.78.2.3:7002 10.78.3.3:7003" ] || fail "paste nodes: ${NODES[*]}"
in_pcli() { ip netns exec "$PNAME-cli" "$@"; }
cluster_checks in_pcli "${NODES[@]}" paste
bench in_pcli "${NODES[0]}" paste
"$KVC" down --name "$PNAME" --state "$PSTATE" --wipe >/dev/null || fail "kv-cluster down (paste) failed"
[ ! -e "/var/run/netns/$PNAME-srv" ] || fail "kv-cluster down left namespace $PNAME-srv"
clean "$PSTATE"
