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
#  - DELETE ?upto=M (M in the middle): records <= M of both workers 404, the others all readable;
#    with worker 1 stopped (SIGSTOP) a DELETE answers 503 after --delete-wait 3 s, and succeeds
#    once it runs;
#  - a pool written with --queues 2 is refused with --queues 3, and with --sync fdatasync;
#  - --transport kernel and io_uring --queues 2 (SO_REUSEPORT workers): POSTs reach both workers,
#    every ack reads back at once from either worker (both read the other's log);
#  - --retain-bytes 2M with --queues 2: each worker keeps at most 1 MiB of its own log, its oldest
#    acks answer 404 and its newest 200;
#  - SIGTERM: exit 0 (each worker's frame accounting included); then paste-wal-dump --slice 0 and
#    --slice 1 read each worker's log offline: every remaining ack there, byte for byte;
# About 60-90 s (Release and ASan trees alike, on 2 vCPUs).
export PASTE_QUEUES=2
. "$(dirname "$0")/mq_wal_lib.sh" # lib.sh, the testbed, wal_lib.sh, mq_lib.sh

POOL=/dev/shm/paste-test-$$-mqwal.pool # 2 slices of 384 MiB
CLEANUP_FILES+=("$POOL")
log "seed $SEED"
HOST=$STACK_IP # where the clients connect
SRV=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port $PORT --pool "$POOL" --pool-size 384M
	--delete-wait 3)

# load (mq_wal_lib.sh): with --max-requests the volume is bounded whatever the machine's speed:
# at most 16k + 2 x 40k + 16k records, which fit in one 384 MiB slice (172k frames) even if every
# flow lands on one worker.

# ---- 1. load over many connections lands on both workers ----------------------------------------
rm -f "$POOL" "$ACKS"
start_sup
spread_load 1000

# ---- 2. every record readable whichever worker a connection lands on ----------------------------
check_all fresh
js=$(stats)
p0=$(worker_field "$js" 0 peer_reads)
p1=$(worker_field "$js" 1 peer_reads)
log "records read from the other worker's log: by worker 0 $p0, by worker 1 $p1"
[ "$p0" -gt 0 ] && [ "$p1" -gt 0 ] || fail "GETs did not make both workers read the other's log"

# ---- 3. kill -9 of worker 0 under load -----------------------------------------------------------
load 3 100 --max-requests 2500
sleep 0.5
log "kill -9 worker 0 (pid $W0) under load"
kill -9 "$W0"
load_wait || true
worker0_restarted

# ---- 4. kill -9 of the whole server under load ---------------------------------------------------
load 3 200 --max-requests 2500
sleep 0.5
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
load 3 300 --no-errors --max-requests 1000
load_wait || { tail -n 5 "$LOGDIR/load.300.log" >&2; fail "load after the restart failed"; }
check_all after-restart

# ---- 5. DELETE truncates every worker's log ------------------------------------------------------
# status URL: one DELETE on a new connection (it lands on either worker); prints the status.
delete() {
	ip netns exec "$NS_CLI" curl -s -o "$LOGDIR/delete.out" -w '%{http_code}' --max-time 8 \
		-X DELETE "http://$STACK_IP:$PORT/log?upto=$1" || true
}
get_status() {
	ip netns exec "$NS_CLI" curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
		"http://$STACK_IP:$PORT/log/$1" || true
}
mid=$(sort -n "$ACKS" | awk '{print $1}' | sed -n "$(($(nacks "$ACKS") / 2))p")
st=$(delete "$mid")
[ "$st" = 200 ] || { cat "$LOGDIR/delete.out" >&2; fail "DELETE ?upto=$mid answered $st"; }
log "DELETE ?upto=$mid: $(cat "$LOGDIR/delete.out")"
for q in $((mid - 1)) "$mid" $(awk -v m="$mid" '$1 <= m {print $1}' "$ACKS" | shuf -n 20 --random-source=<(yes)); do
	[ "$(get_status "$q")" = 404 ] || fail "record $q <= $mid still readable after the DELETE"
done
awk -v m="$mid" '$1 > m' "$ACKS" >"$ACKS.kept" && mv "$ACKS.kept" "$ACKS"
check_all after-delete
js=$(stats)
[ "$(field "$js" first_seq)" -gt "$mid" ] || fail "/stats first_seq $(field "$js" first_seq) <= $mid"
# A worker that does not run (stopped) cannot truncate its log: the DELETE answers 503 after
# --delete-wait 3 s (from the other worker; a connection that lands on the stopped one times out:
# try again), and the stopped worker applies it once it runs again. The stopped worker would not
# answer the ARP requests that land on its queue either: pin the neighbour entry meanwhile.
mid=$(sort -n "$ACKS" | awk '{print $1}' | sed -n "$(($(nacks "$ACKS") / 2))p")
mac=$(in_cli ip neigh show "$STACK_IP" dev "$VETH_CLI" | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$mac" ] || fail "no neighbour entry for $STACK_IP in the client namespace"
in_cli ip neigh replace "$STACK_IP" lladdr "$mac" dev "$VETH_CLI" nud permanent
kill -STOP "$W1"
for ((i = 0; i < 12; i++)); do
	st=$(delete "$mid")
	[ "$st" = 000 ] || break
done
kill -CONT "$W1"
in_cli ip neigh replace "$STACK_IP" lladdr "$mac" dev "$VETH_CLI" nud reachable
log "DELETE with worker 1 stopped: $st after $((i + 1)) attempt(s)"
[ "$st" = 503 ] && grep -q 'worker 1 has not applied the truncation' "$LOGDIR/delete.out" ||
	{ cat "$LOGDIR/delete.out" >&2; fail "DELETE with worker 1 stopped answered $st, expected 503"; }
# Worker 1 applies the request at its next tick once it runs; on a loaded machine (ASan tree, CI)
# that can take longer than --delete-wait right after SIGCONT: allow three attempts.
for ((i = 0; i < 3; i++)); do
	st=$(delete "$mid")
	[ "$st" = 200 ] && break
done
[ "$st" = 200 ] || fail "DELETE after worker 1 runs again answered $st (3 attempts)"
awk -v m="$mid" '$1 > m' "$ACKS" >"$ACKS.kept" && mv "$ACKS.kept" "$ACKS"
check_all after-delete-2

# ---- 6. offline: paste-wal-dump --slice K reads each worker's log ---------------------------------
stop_sup
for k in 0 1; do
	awk -v k=$k '($1 - 1) % 2 == k {print int(($1 - 1) / 2) + 1, $2, $3, $4}' "$ACKS" >"$ACKS.$k"
	dump_verify "slice$k" "$ACKS.$k" --slice $k
done

# ---- 7. the worker count is part of the record ids -----------------------------------------------
rc=0
ip netns exec "$NS_SRV" "$WAL" --queues 3 "${SRV[@]}" >"$LOGDIR/q3.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'record ids encode the worker count' "$LOGDIR/q3.log" ||
	{ cat "$LOGDIR/q3.log" >&2; fail "--queues 3 on a --queues 2 pool was not refused (status $rc)"; }
# ... and so is where the records are: the workers' logs in this pool, not in log files.
rc=0
ip netns exec "$NS_SRV" "$WAL" --queues 2 "${SRV[@]}" --sync fdatasync \
	--log-file "$LOGDIR/none" >"$LOGDIR/fd.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'was used with --queues and --sync pmem' "$LOGDIR/fd.log" ||
	{ cat "$LOGDIR/fd.log" >&2; fail "--sync fdatasync on a --queues --sync pmem pool was not refused (status $rc)"; }
rm -f "$LOGDIR"/none.w*

# ---- 8. kernel-socket transports: two SO_REUSEPORT workers on one port, the same WAL -----------
# The workers start and serve within the same second here. A worker that looked for its peer's
# slice at startup (before the peer had made its log) used to wait a whole second before looking
# again, so every GET of the peer's records in that second answered 404 (1,185 of 4,800 in one
# run): each transport's section runs its GETs right after the load, in that window.
# kernel_section TRANSPORT TAG CONN_BASE
kernel_section() {
	POOL_K=/dev/shm/paste-test-$$-mqwal-$2.pool
	CLEANUP_FILES+=("$POOL_K")
	rm -f "$POOL_K"
	HOST=$SRV_IP
	SRV=(--transport "$1" --ip "$SRV_IP" --port $PORT --pool "$POOL_K" --pool-size 64M)
	: >"$ACKS"
	start_sup
	grep -q "ready worker=0 transport=$1 " "$WAL_LOG" || fail "$2: worker 0 not on transport $1"
	load 3 "$3" --no-errors --max-requests 300
	load_wait || { tail -n 5 "$LOGDIR/load.$3.log" >&2; fail "$2: load failed"; }
	odd=$(awk '$1 % 2 == 1' "$ACKS" | wc -l)
	log "$2: $(nacks "$ACKS") acknowledged, $odd of worker 0"
	[ "$odd" -gt 0 ] && [ "$odd" -lt "$(nacks "$ACKS")" ] || fail "$2: POSTs did not reach both workers"
	check_all "$2"
	js=$(stats)
	p0=$(worker_field "$js" 0 peer_reads) && p1=$(worker_field "$js" 1 peer_reads) ||
		fail "$2: /stats does not report both workers: $js"
	log "$2: records read from the other worker's log: by worker 0 $p0, by worker 1 $p1"
	[ "$p0" -gt 0 ] && [ "$p1" -gt 0 ] || fail "$2: GETs did not make both workers read the other's log"
	stop_sup
	rm -f "$POOL_K"
}
kernel_section kernel kernel 400
kernel_section io_uring uring 500

# ---- 9. retention with --queues: every worker keeps at most --retain-bytes / 2 of its own log ------
POOL_K=/dev/shm/paste-test-$$-mqwal-r.pool
CLEANUP_FILES+=("$POOL_K")
SRV=(--transport kernel --ip "$SRV_IP" --port $PORT --pool "$POOL_K" --pool-size 64M --retain-bytes 2M)
: >"$ACKS"
start_sup
load 3 600 --no-errors --max-requests 100
load_wait || { tail -n 5 "$LOGDIR/load.600.log" >&2; fail "retention: load failed"; }
sleep 1 # retention runs on every tick (250 ms)
grep -q 'retention: dropped' "$WAL_LOG" || fail "retention: nothing dropped"
js=$(stats)
for k in 0 1; do
	b=$(worker_field "$js" $k bytes)
	mine=$(awk -v k=$k '($1 - 1) % 2 == k {print $1}' "$ACKS" | sort -n)
	old=$(printf '%s\n' "$mine" | head -n 1) new=$(printf '%s\n' "$mine" | tail -n 1)
	ab=$(awk -v k=$k '($1 - 1) % 2 == k {b += $4} END {print b + 0}' "$ACKS")
	# SO_REUSEPORT may give a worker so few connections that it never had more than its share: then
	# it drops nothing, and its oldest ack must still be there.
	o=404
	((ab > 1048576)) || o=200
	log "retention: worker $k keeps $b of the $ab bytes it got; its oldest ack $old ($o expected), newest $new"
	[ "$b" -le 1048576 ] || fail "retention: worker $k keeps $b bytes (more than 2M / 2)"
	for q in "$old:$o" "$new:200"; do
		st=$(in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$HOST:$PORT/log/${q%:*}")
		[ "$st" = "${q#*:}" ] || fail "retention: GET of worker $k's record ${q%:*} answered $st, expected ${q#*:}"
	done
done
stop_sup
rm -f "$POOL_K"
log "ok"
