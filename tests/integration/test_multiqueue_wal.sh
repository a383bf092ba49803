#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-wal --queues 2 on a 2-queue veth testbed (PASTE_QUEUES=2), one pool file (a slice per
# worker, each with its own log); record N belongs to worker (N-1) mod 2:
#  - POSTs over many connections land on both workers: acknowledged seqs of both parities, and
#    each worker's "appended" counter in /stats (read through either worker) is > 0;
#  - every acknowledged record reads back byte for byte with GET /log/N over fresh connections
#    (each may land on the other worker: reads of the other slice's log), and the range reads
#    (GET ?from=) list them all in increasing order;
#  - kill -9 of worker 0 under load: the supervisor restarts it, 0 acknowledged records lost;
#  - kill -9 of the supervisor and both workers under load: a restart recovers both slices,
#    0 acknowledged records lost, and new POSTs go on from there;
#  - DELETE is refused with 501; a pool written with --queues 2 is refused with --queues 3;
#  - SIGTERM: exit 0 (each worker's frame accounting included).
# About 30-60 s.
export PASTE_QUEUES=2
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wal_lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
CLIENT_PY=$HERE/wal_client.py
WAL=$PASTE_BUILD/paste-wal
POOL=/dev/shm/paste-test-$$-mqwal.pool # 2 slices of 384 MiB
CLEANUP_FILES+=("$POOL")
PORT=8080
SEED=${PASTE_CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
ACKS=$LOGDIR/acks
[ -x "$WAL" ] || fail "$WAL not built"
command -v python3 >/dev/null || fail "python3 not installed (scripts/deps installs it)"
log "seed $SEED"
SRV=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port $PORT --pool "$POOL" --pool-size 384M)

# start_sup [ARGS...]: paste-wal --queues 2; waits for the supervisor's ready line (SUP_PID,
# WAL_LOG, W0, W1).
start_sup() {
	local i rc=0 line
	WAL_N=$((WAL_N + 1))
	WAL_LOG=$LOGDIR/sup.$WAL_N.log
	log "start: paste-wal --queues 2 ${SRV[*]} $*"
	ip netns exec "$NS_SRV" "$WAL" --queues 2 "${SRV[@]}" "$@" >"$WAL_LOG" 2>&1 &
	SUP_PID=$!
	track_pid "$SUP_PID"
	ECHO_PID=$SUP_PID # fail() shows this log
	ECHO_LOG=$WAL_LOG
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		line=$(grep -m1 'supervisor ready' "$WAL_LOG" || true)
		if [ -n "$line" ]; then
			log "$line"
			W0=$(printf '%s\n' "$line" | sed 's/.*pids=\([0-9]*\),.*/\1/')
			W1=$(printf '%s\n' "$line" | sed 's/.*pids=[0-9]*,\([0-9]*\).*/\1/')
			return 0
		fi
		if ! kill -0 "$SUP_PID" 2>/dev/null; then
			wait "$SUP_PID" || rc=$?
			untrack_pid "$SUP_PID"
			fail "paste-wal --queues 2 exited with status $rc before it was ready"
		fi
		sleep 0.1
	done
	fail "paste-wal --queues 2 not ready after ${READY_TIMEOUT}s"
}

# load SECONDS CONN_BASE [ARGS]: the ack-recording load client in the background (LOAD_PID).
load() {
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" load --host "$STACK_IP" --port $PORT --conns 16 \
		--depth 4 --duration "$1" --stall 3 --grace 5 --max-size 32768 --seed "$SEED" \
		--conn-base "$2" --ack-file "$ACKS" "${@:3}" >"$LOGDIR/load.$2.log" 2>&1 &
	LOAD_PID=$!
	track_pid "$LOAD_PID"
}

load_wait() {
	local rc=0
	wait "$LOAD_PID" || rc=$?
	untrack_pid "$LOAD_PID"
	return $rc
}

# check_all TAG: every acknowledged record, by GET on fresh connections and by range reads.
check_all() {
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" getall --host "$STACK_IP" --port $PORT \
		--seed "$SEED" --ack-file "$ACKS" --per-conn 10 >"$LOGDIR/getall.$1.log" 2>&1 ||
		{ tail -n 20 "$LOGDIR/getall.$1.log" >&2; fail "$1: acknowledged records not readable by GET"; }
	log "$1: $(tail -n 1 "$LOGDIR/getall.$1.log")"
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" verify --host "$STACK_IP" --port $PORT --sparse \
		--strict --seed "$SEED" --ack-file "$ACKS" --batch 500 >"$LOGDIR/verify.$1.log" 2>&1 ||
		{ tail -n 20 "$LOGDIR/verify.$1.log" >&2; fail "$1: range reads lost or changed records"; }
	log "$1: $(tail -n 1 "$LOGDIR/verify.$1.log")"
}

stats() { ip netns exec "$NS_CLI" curl -s --max-time 10 "http://$STACK_IP:$PORT/stats"; }

# worker_field JSON K NAME: NAME of worker K in the "workers" array of /stats.
worker_field() {
	printf '%s\n' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workers"][int(sys.argv[1])][sys.argv[2]])' "$2" "$3"
}

stop_sup() {
	local i rc=0
	kill -TERM "$SUP_PID"
	for ((i = 0; i < 400; i++)); do
		kill -0 "$SUP_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$SUP_PID" 2>/dev/null && fail "supervisor still running 40 s after SIGTERM"
	wait "$SUP_PID" || rc=$?
	untrack_pid "$SUP_PID"
	[ "$rc" = 0 ] || fail "paste-wal --queues 2 exited with status $rc"
}

# ---- 1. load over many connections lands on both workers ----------------------------------------
rm -f "$POOL" "$ACKS"
start_sup
load 1 0 --no-errors
load_wait || { tail -n 5 "$LOGDIR/load.0.log" >&2; fail "load with no errors failed"; }
n=$(nacks "$ACKS")
odd=$(awk '$1 % 2 == 1' "$ACKS" | wc -l)
log "acknowledged $n records: $odd of worker 0, $((n - odd)) of worker 1"
[ "$n" -gt 100 ] || fail "only $n records acknowledged"
[ "$odd" -gt 0 ] && [ "$((n - odd))" -gt 0 ] || fail "POSTs did not reach both workers"
js=$(stats)
a0=$(worker_field "$js" 0 appended)
a1=$(worker_field "$js" 1 appended)
log "/stats: worker 0 appended=$a0, worker 1 appended=$a1, total_appended=$(field "$js" total_appended)"
[ "$a0" = "$odd" ] && [ "$a1" = "$((n - odd))" ] ||
	fail "per-worker counters ($a0, $a1) do not match the acks ($odd, $((n - odd)))"

# ---- 2. every record readable whichever worker a connection lands on ----------------------------
check_all fresh
js=$(stats)
p0=$(worker_field "$js" 0 peer_reads)
p1=$(worker_field "$js" 1 peer_reads)
log "records read from the other worker's log: by worker 0 $p0, by worker 1 $p1"
[ "$p0" -gt 0 ] && [ "$p1" -gt 0 ] || fail "GETs did not make both workers read the other's log"
st=$(ip netns exec "$NS_CLI" curl -s -o /dev/null -w '%{http_code}' -X DELETE \
	"http://$STACK_IP:$PORT/log?upto=1")
[ "$st" = 501 ] || fail "DELETE with --queues answered $st, expected 501"

# ---- 3. kill -9 of worker 0 under load -----------------------------------------------------------
load 2 100
sleep 0.8
log "kill -9 worker 0 (pid $W0) under load"
kill -9 "$W0"
load_wait || true
for ((i = 0; i < 300; i++)); do
	grep -q 'worker 0 ready again' "$WAL_LOG" && break
	sleep 0.1
done
grep -q 'worker 0 ready again' "$WAL_LOG" || fail "worker 0 was not restarted"
log "after kill -9 of worker 0: $(nacks "$ACKS") acknowledged in all"
check_all worker-kill

# ---- 4. kill -9 of the whole server under load ---------------------------------------------------
load 2 200
sleep 0.8
W0=$(grep -o 'worker 0 ready again (pid [0-9]*' "$WAL_LOG" | tail -n 1 | grep -o '[0-9]*$')
log "kill -9 supervisor $SUP_PID and workers $W0 $W1 under load"
kill -9 "$SUP_PID" "$W0" "$W1"
wait "$SUP_PID" 2>/dev/null || true
untrack_pid "$SUP_PID"
load_wait || true
sleep 0.5
before=$(nacks "$ACKS")
start_sup
grep -q 'replaced a stale steering program' "$WAL_LOG" || fail "the stale XDP program was not replaced"
log "after kill -9 of the server: $before acknowledged in all"
check_all server-kill
load 1 300 --no-errors
load_wait || { tail -n 5 "$LOGDIR/load.300.log" >&2; fail "load after the restart failed"; }
check_all after-restart

# ---- 5. the worker count is part of the record ids -----------------------------------------------
stop_sup
rc=0
ip netns exec "$NS_SRV" "$WAL" --queues 3 "${SRV[@]}" >"$LOGDIR/q3.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'record ids encode the worker count' "$LOGDIR/q3.log" ||
	{ cat "$LOGDIR/q3.log" >&2; fail "--queues 3 on a --queues 2 pool was not refused (status $rc)"; }
rc=0
"$WAL" --transport kernel --queues 2 --port $PORT --pool "$POOL" --sync fdatasync \
	--log-file /dev/shm/none >"$LOGDIR/fd.log" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q 'cannot be combined with --sync fdatasync' "$LOGDIR/fd.log" ||
	fail "--queues with --sync fdatasync was not refused with a usage error"
log "ok"
