#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-wal --queues 2 --sync fdatasync on a 2-queue veth testbed (PASTE_QUEUES=2): each worker
# appends to its own log file (--log-file F: worker K's is F.wK, fdatasync()ed once per round);
# record N belongs to worker (N-1) mod 2:
#  - POSTs over many connections land on both workers: acknowledged seqs of both parities, each
#    worker's "appended" in /stats equal to its acks, each worker's file exists and each worker
#    counts its fdatasync calls ("fsyncs" in its /stats entry);
#  - kill -9 of worker 0 under load: the supervisor restarts it, its file recovered; every ack
#    reads back (both workers, GETs and ranges);
#  - kill -9 of the supervisor and both workers under load: a restart recovers both files, and
#    every acknowledged record reads back byte for byte with GET /log/N over fresh connections
#    (each may land on either worker: reads of the other worker's file) and in range reads; both
#    workers read records of the other's file (peer_reads > 0);
#  - DELETE ?upto=M: records <= M of both workers 404, the others still readable;
#  - SIGTERM: exit 0; paste-wal-dump --log-file F --slice K reads each worker's file offline:
#    every remaining ack there, byte for byte;
#  - --transport kernel --queues 2 --sync fdatasync (SO_REUSEPORT workers): POSTs reach both
#    workers and every ack reads back at once from either worker.
# About 15-40 s (Release and ASan trees, on 2 vCPUs).
export PASTE_QUEUES=2
. "$(dirname "$0")/mq_wal_lib.sh" # lib.sh, the testbed, wal_lib.sh, mq_lib.sh

POOL=/dev/shm/paste-test-$$-mqfd.pool # 2 slices of 64 MiB: frames only pass through
CLEANUP_FILES+=("$POOL")
WLOG=$LOGDIR/wal.data # the workers' files: wal.data.w0, wal.data.w1 (a real file system)
log "seed $SEED"
HOST=$STACK_IP
SRV=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port $PORT --pool "$POOL" --pool-size 64M
	--sync fdatasync --log-file "$WLOG" --delete-wait 5)

# ---- 1. load over many connections lands on both workers, each in its own file ----------------
rm -f "$POOL" "$ACKS" "$WLOG".w*
start_sup
[ "$(grep -c 'ready worker=[01] .*sync=fdatasync' "$WAL_LOG")" = 2 ] || fail "the workers do not run --sync fdatasync"
spread_load 300
f0=$(worker_field "$js" 0 fsyncs) f1=$(worker_field "$js" 1 fsyncs)
log "fdatasync calls (group commits): worker 0 $f0, worker 1 $f1, total $(field "$js" total_fsyncs)"
[ "$f0" -gt 0 ] && [ "$f1" -gt 0 ] || fail "a worker counts no fdatasync: $f0, $f1"
for k in 0 1; do
	[ -s "$WLOG.w$k" ] || fail "worker $k's log file $WLOG.w$k is missing or empty"
done

# ---- 2. kill -9 of worker 0 under load: restarted, its file recovered --------------------------
n=$(nacks "$ACKS")
load 3 50 --max-requests 1000
after_acks "$n" 300
log "kill -9 worker 0 (pid $W0) under load"
kill -9 "$W0"
load_wait || true
grep -q ' done=16 ' "$LOGDIR/load.50.log" && fail "the load was over before the kill: $(cat "$LOGDIR/load.50.log")"
worker0_restarted
W0=$(grep -o 'worker 0 ready again (pid [0-9]*' "$WAL_LOG" | tail -n 1 | grep -o '[0-9]*$')
n=$(nacks "$ACKS")

# ---- 3. kill -9 of the whole server under load; the restart recovers both files -----------------
load 3 100 --max-requests 2500
after_acks "$n" 300
log "kill -9 supervisor $SUP_PID and workers $W0 $W1 under load"
kill -9 "$SUP_PID" "$W0" "$W1"
wait "$SUP_PID" 2>/dev/null || true
untrack_pid "$SUP_PID"
load_wait || true
before=$(nacks "$ACKS")
[ "$before" -gt "$n" ] || fail "no record acknowledged during the load that was killed"
# at most 16 x 2500 records: the kill must land while some connections still send
grep -q ' done=16 ' "$LOGDIR/load.100.log" && fail "the load was over before the kill: $(cat "$LOGDIR/load.100.log")"
start_sup
grep -q 'replaced a stale steering program' "$WAL_LOG" || fail "the stale XDP program was not replaced"
rec=$(grep -o 'ready worker=[01] .*recovered=[0-9]*' "$WAL_LOG" | sed 's/.*recovered=//' | awk '{s += $1} END {print s + 0}')
log "after kill -9 of the server: $before acknowledged in all, $rec records recovered from the files"
[ "$rec" -ge "$before" ] || fail "recovered $rec records, fewer than the $before acknowledged"
check_all server-kill
both_workers
p0=$(worker_field "$js" 0 peer_reads) p1=$(worker_field "$js" 1 peer_reads)
log "records read from the other worker's file: by worker 0 $p0, by worker 1 $p1"
[ "$p0" -gt 0 ] && [ "$p1" -gt 0 ] || fail "GETs did not make both workers read the other's file"

# ---- 4. DELETE truncates both files -----------------------------------------------------------
mid=$(sort -n "$ACKS" | awk '{print $1}' | sed -n "$(($(nacks "$ACKS") / 2))p")
st=$(ip netns exec "$NS_CLI" curl -s -o "$LOGDIR/delete.out" -w '%{http_code}' --max-time 15 \
	-X DELETE "http://$HOST:$PORT/log?upto=$mid" || true)
[ "$st" = 200 ] || { cat "$LOGDIR/delete.out" >&2; fail "DELETE ?upto=$mid answered $st"; }
log "DELETE ?upto=$mid: $(cat "$LOGDIR/delete.out")"
for q in $((mid - 1)) "$mid" $(awk -v m="$mid" '$1 <= m {print $1}' "$ACKS" | shuf -n 10 --random-source=<(yes)); do
	st=$(ip netns exec "$NS_CLI" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$HOST:$PORT/log/$q" || true)
	[ "$st" = 404 ] || fail "record $q <= $mid answered $st after the DELETE"
done
awk -v m="$mid" '$1 > m' "$ACKS" >"$ACKS.kept" && mv "$ACKS.kept" "$ACKS"
check_all after-delete

# ---- 5. clean stop; paste-wal-dump reads each worker's file ---------------------------------------
stop_sup
for k in 0 1; do
	awk -v k=$k '($1 - 1) % 2 == k {print int(($1 - 1) / 2) + 1, $2, $3, $4}' "$ACKS" >"$ACKS.$k"
	"$DUMP" --log-file "$WLOG" --slice $k --raw >"$LOGDIR/dump.w$k.raw" 2>"$LOGDIR/dump.w$k.txt" ||
		{ tail -n 5 "$LOGDIR/dump.w$k.txt" >&2; fail "paste-wal-dump of worker $k's file failed"; }
	grep -q ' torn_bytes=0 problems=0$' "$LOGDIR/dump.w$k.txt" ||
		{ tail -n 2 "$LOGDIR/dump.w$k.txt" >&2; fail "worker $k's file is not clean after a clean stop"; }
	python3 "$CLIENT_PY" verify-dump --listing "$LOGDIR/dump.w$k.txt" --raw "$LOGDIR/dump.w$k.raw" \
		--ack-file "$ACKS.$k" --seed "$SEED" --strict >"$LOGDIR/vdump.w$k.log" 2>&1 ||
		{ cat "$LOGDIR/vdump.w$k.log" >&2; fail "worker $k's file lost or changed acknowledged records"; }
	log "worker $k's file: $(tail -n 1 "$LOGDIR/dump.w$k.txt" | cut -d' ' -f3-6) $(tail -n 1 "$LOGDIR/vdump.w$k.log")"
	rm -f "$LOGDIR/dump.w$k.raw"
done
rm -f "$WLOG".w*

# ---- 6. the kernel transport: SO_REUSEPORT workers, the same files ------------------------------
# Its workers start and serve within the same second, so GETs of a peer's records right after the
# load also check that a worker finds a peer that started after it (wal_multi.c, peer_pub).
HOST=$SRV_IP
SRV=(--transport kernel --ip "$SRV_IP" --port $PORT --pool "$POOL" --pool-size 64M
	--sync fdatasync --log-file "$WLOG")
rm -f "$POOL" "$WLOG".w*
: >"$ACKS"
start_sup
load 3 400 --no-errors --max-requests 100
load_wait || { tail -n 5 "$LOGDIR/load.400.log" >&2; fail "kernel: load failed"; }
odd=$(awk '$1 % 2 == 1' "$ACKS" | wc -l)
log "kernel: $(nacks "$ACKS") acknowledged, $odd of worker 0"
[ "$odd" -gt 0 ] && [ "$odd" -lt "$(nacks "$ACKS")" ] || fail "kernel: POSTs did not reach both workers"
check_all kernel
stop_sup
rm -f "$WLOG".w*
log "ok"
