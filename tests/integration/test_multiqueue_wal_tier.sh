#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-wal --queues 2 --tier-dir DIR: each worker destages its own records to DIR/wK, any worker
# serves any record from either tier of either worker. A 2-queue veth testbed (PASTE_QUEUES=2) and
# a pool far too small for the load (8 MiB per worker slice), so destage jobs run all the time.
#  - worker 0 SIGKILLs itself after its 3rd destage job's segment was synced, before the switch
#    (PASTE_WAL_TIER_KILL_AT=synced:3:0, first start only) under load from 16 connections: the
#    supervisor restarts it, its recovery cuts the unswitched copy; meanwhile GETs of worker 0's
#    acknowledged records over new connections (either worker) answer their bytes or fail to
#    connect (worker 0 down), never 404 or other bytes;
#  - kill -9 of the supervisor and both workers under load, while both destage: offline, before
#    any restart, paste-wal-dump --slice K --tier-dir DIR --verify --raw reads both tiers of each
#    worker and every acknowledged record of that worker is there byte for byte, none cut;
#  - restart: every acknowledged record reads back byte for byte by GET over fresh connections
#    (landing on either worker) and by range reads; /stats: both workers destaged records, both
#    read records from the other worker's segment files (peer_tier_reads), no 5xx; no POST was
#    refused (507) during any load (the tier has room: a POST waits for destaging instead);
#  - DELETE ?upto=M with M inside both workers' tiers: records <= M 404, the rest all readable,
#    both tiers shrink; then M past both tiers' ends: every worker's first record is above M, the
#    segment files go (all but a last one a worker destaged on into), the records above M still
#    read back; SIGTERM exits 0 (frame accounting of
#    each worker); paste-wal-dump of each slice verifies what is left;
#  - --retain-bytes 16M (8 MiB per worker, more than its pool slice holds): each keeps at most 8 MiB
#    across both tiers under load, its oldest ack 404 and its newest 200.
# Environment: PASTE_CRASH_SEED (payloads and kill time; random, printed), PASTE_TIER_BASE
# (directory for the tier, default /var/tmp: must not be tmpfs to mean anything), plus lib.sh's.
# About 30-50 s.
export PASTE_QUEUES=2
. "$(dirname "$0")/mq_wal_lib.sh" # lib.sh, the testbed, wal_lib.sh, mq_lib.sh

POOL=/dev/shm/paste-test-$$-mqtier.pool # 2 slices of 8 MiB
TIER=${PASTE_TIER_BASE:-/var/tmp}/paste-test-$$-mqtier
CLEANUP_FILES+=("$POOL")
CLEANUP_DIRS+=("$TIER")
SLICE=$((8 << 20))
command -v curl >/dev/null || fail "curl not installed (scripts/deps installs it)"
log "seed $SEED (PASTE_CRASH_SEED=$SEED reproduces payloads and the kill time)"
HOST=$STACK_IP
SRV=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port $PORT --pool "$POOL" --pool-size $SLICE
	--ring-size 512 --reserve-frames 512 --tier-dir "$TIER" --tier-size 1G --delete-wait 5)

# tier_load CONN_BASE MAX: mq_wal_lib.sh's load in the background (LOAD_PID; its log
# load.CONN_BASE.log), shallower (depth 2) and with bodies of at most 16 KiB: MAX requests
# per connection (16 of them; about 8 KiB each: MAX 250 is twice the two slices), 20 s at most.
# 16, not 8: the sender's queue choice is a hash per connection, and with 8 all of them landed on
# one worker about once in 128 loads (seen twice: worker 0 never killed itself; no record of worker 1).
tier_load() { load 20 "$1" --depth 2 --stall 4 --max-size 16384 --max-requests "$2"; }

# load_end CONN_BASE: the load ended and no request was refused (connections reset by a kill are not
# refusals); its summary line goes to SUM.
load_end() {
	local rc=0
	wait "$LOAD_PID" || rc=$?
	untrack_pid "$LOAD_PID"
	SUM=$(grep '^wal_client: load' "$LOGDIR/load.$1.log" || true)
	[ -n "$SUM" ] || { cat "$LOGDIR/load.$1.log" >&2; fail "load $1: client status $rc, no summary"; }
	[ "$(field "$SUM" errors)" = 0 ] || { grep 'answered' "$LOGDIR/load.$1.log" | head -n 5 >&2; fail "load $1: requests refused: $SUM"; }
}

# dump_slices TAG: both workers' logs offline (pool and tier), against their acks in local seqs.
# Sets TL0, TL1: the tier records listed of each.
dump_slices() {
	for k in 0 1; do
		awk -v k=$k '($1 - 1) % 2 == k {print int(($1 - 1) / 2) + 1, $2, $3, $4}' "$ACKS" >"$ACKS.$k"
		dump_verify "$1.slice$k" "$ACKS.$k" --slice $k --tier-dir "$TIER"
		eval "TL$k=$(grep -o 'tier_listed=[0-9]*' "$LOGDIR/dump.$1.slice$k.txt" | tail -n 1 | cut -d= -f2)"
	done
}

# wait_acks N: until the ack file has N lines (the load's progress, whatever the machine's speed).
wait_acks() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(nacks "$ACKS")" -ge "$1" ] && return 0
		kill -0 "$LOAD_PID" 2>/dev/null || return 0
		sleep 0.05
	done
}

rm -rf "$POOL" "$TIER" "$ACKS"

# ---- 1. worker 0 kills itself in the middle of a destage job, under load ------------------------
export PASTE_WAL_TIER_KILL_AT=synced:3:0
start_sup
unset PASTE_WAL_TIER_KILL_AT
[ -d "$TIER/w0" ] && [ -d "$TIER/w1" ] || fail "no per-worker tier directories in $TIER: $(ls "$TIER")"
tier_load 0 500
# Meanwhile, GETs of worker 0's acknowledged records (odd seqs) on new connections, landing on
# either worker: worker 1 reads them from worker 0's pool or segment files while worker 0 destages,
# dies and recovers. Each must answer the record's bytes (or fail to connect, on worker 0 while it
# is down); a 404 or other bytes fail.
rm -f "$LOGDIR/readloop.stop"
ip netns exec "$NS_CLI" python3 "$CLIENT_PY" readloop --host "$HOST" --port $PORT --seed "$SEED" \
	--ack-file "$ACKS" --stop-file "$LOGDIR/readloop.stop" --mod 2 --rem 1 --min-gets 200 >"$LOGDIR/readloop.log" 2>&1 &
READ_PID=$!
track_pid "$READ_PID"
for ((i = 0; i < 300; i++)); do
	grep -q 'worker 0 ready again' "$WAL_LOG" && break
	sleep 0.1
done
grep -q 'worker 0 ready again' "$WAL_LOG" || fail "worker 0 did not kill itself at 'synced' (or was not restarted)"
grep -q "ready worker=0 .*tier_trimmed=[1-9]" "$WAL_LOG" ||
	fail "worker 0's restart did not cut the unswitched segment copy: $(grep 'ready worker=0' "$WAL_LOG" | tail -n 1)"
load_end 0
log "worker 0 killed itself mid-destage and came back: $SUM; $(nacks "$ACKS") acks"
touch "$LOGDIR/readloop.stop"
rc=0
wait "$READ_PID" || rc=$?
untrack_pid "$READ_PID"
RSUM=$(grep '^wal_client: readloop' "$LOGDIR/readloop.log" || true)
log "reads of worker 0's records meanwhile: $RSUM"
[ "$rc" = 0 ] && [ -n "$RSUM" ] || { tail -n 10 "$LOGDIR/readloop.log" >&2; fail "reads of worker 0's records during its kill failed"; }
(($(field "$RSUM" ok) >= 200)) || fail "too few reads of worker 0's records succeeded during the load: $RSUM"

# ---- 2. kill -9 of everything under load, while both workers destage ----------------------------
before=$(nacks "$ACKS")
W0=$(grep -o 'worker 0 ready again (pid [0-9]*' "$WAL_LOG" | tail -n 1 | grep -o '[0-9]*$')
tier_load 100 2500
wait_acks $((before + 1000))
js=$(stats) || fail "/stats failed under load"
wait_acks $((before + 4000 + RANDOM % 4000))
kill -0 "$LOAD_PID" 2>/dev/null || fail "the load ended before the kill: $(tail -n 1 "$LOGDIR/load.100.log")"
n=$(nacks "$ACKS")
kill -9 "$SUP_PID" "$W0" "$W1"
log "killed -9 supervisor $SUP_PID and workers $W0 $W1 after $((n - before)) acks of this load (destaging: worker 0 $(worker_field "$js" 0 tier_destaged), worker 1 $(worker_field "$js" 1 tier_destaged) records since its start)"
wait "$SUP_PID" 2>/dev/null || true
untrack_pid "$SUP_PID"
load_end 100
log "after kill -9 of everything: $SUM; $(nacks "$ACKS") acks"
(($(field "$SUM" acked) < 16 * 2500)) || fail "the load was over before the kill: $SUM"
sleep 0.5 # the workers' exits (their pool locks) after the SIGKILL
dump_slices killed
((TL0 > 0 && TL1 > 0)) || fail "offline, a worker's tier is empty (listed: worker 0 $TL0, worker 1 $TL1)"

# ---- 3. restart: every acknowledged record from both tiers of both workers ------------------------
start_sup
bytes=$(acked_bytes "$ACKS")
((bytes > 2 * SLICE)) || fail "only $bytes bytes acknowledged: not more than both pool slices hold"
check_all restart
js=$(stats)
printf '%s' "$js" | python3 -c 'import json, sys; json.load(sys.stdin)' || fail "/stats is not valid JSON: $js"
for k in 0 1; do
	d=$(worker_field "$js" $k tier_destaged) && r=$(worker_field "$js" $k tier_records) &&
		p=$(worker_field "$js" $k peer_tier_reads) || fail "/stats has no tier counters of worker $k: $js"
	log "worker $k: tier_records=$r tier_destaged=$d peer_tier_reads=$p (since the restart)"
	[ "$r" -gt 0 ] || fail "worker $k has no record in its tier"
	[ "$p" -gt 0 ] || fail "worker $k read no record from the other worker's segment files"
done
[ "$(field "$js" total_tier_records)" -gt 0 ] || fail "/stats total_tier_records: $js"
[ "$(field "$js" replies_5xx)" = 0 ] || fail "5xx replies: $js"

# ---- 4. DELETE frees both tiers of both workers ---------------------------------------------------
# delete M: DELETE ?upto=M (lands on either worker; 200 once every worker truncated), then records
# <= M answer 404 and every acknowledged record above reads back.
delete() {
	local out st q
	out=$(in_cli curl -sS --max-time 15 -o "$LOGDIR/delete.out" -w '%{http_code}' -X DELETE "http://$HOST:$PORT/log?upto=$1") || true
	[ "$out" = 200 ] || { cat "$LOGDIR/delete.out" >&2; fail "DELETE ?upto=$1 answered $out"; }
	for q in $(($1 - 1)) "$1" $(awk -v m="$1" '$1 <= m {print $1}' "$ACKS" | shuf -n 20 --random-source=<(yes)); do
		st=$(in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$HOST:$PORT/log/$q")
		[ "$st" = 404 ] || fail "record $q <= $1 answered $st after the DELETE"
	done
	awk -v m="$1" '$1 > m' "$ACKS" >"$ACKS.kept" && mv "$ACKS.kept" "$ACKS"
	check_all "delete-$1"
}
# Worker k's tier holds global seqs f_k, f_k + 2, ..., f_k + 2 (t_k - 1) (its first_seq while the
# tier is not empty).
t0=$(worker_field "$js" 0 tier_records)
t1=$(worker_field "$js" 1 tier_records)
f0=$(worker_field "$js" 0 first_seq)
f1=$(worker_field "$js" 1 first_seq)
# a) inside both tiers: each tier loses its older half, keeps the rest
mid=$(((f0 + 2 * (t0 / 2)) < (f1 + 2 * (t1 / 2)) ? f0 + 2 * (t0 / 2) : f1 + 2 * (t1 / 2)))
delete "$mid"
js=$(stats)
for k in 0 1; do
	r=$(worker_field "$js" $k tier_records)
	t=$((k == 0 ? t0 : t1))
	log "DELETE ?upto=$mid: worker $k tier_records $t -> $r"
	((r < t && r > 0)) || fail "DELETE ?upto=$mid inside both tiers: worker $k's tier went from $t to $r records"
done
# b) past both tiers' ends: every segment file of both workers is deleted, except the last one of
# a worker that destaged on into it meanwhile (segments go whole; a worker still above --tier-stop
# destages on), which then holds records above M
mid=$(((f0 + 2 * (t0 - 1)) > (f1 + 2 * (t1 - 1)) ? f0 + 2 * (t0 - 1) : f1 + 2 * (t1 - 1)))
old=$(cd "$TIER" && find . -name 'seg-*.pwt' | sort)
delete "$mid"
js=$(stats)
gone=0
for k in 0 1; do
	last=$(cd "$TIER" && find "./w$k" -name 'seg-*.pwt' | sort | tail -n 1)
	tr=$(worker_field "$js" $k tier_records)
	tf=$(worker_field "$js" $k first_seq)
	(($(worker_field "$js" $k records) == 0 || tf > mid)) || fail "worker $k's first record $tf <= $mid after DELETE ?upto=$mid"
	for f in $(printf '%s
' "$old" | grep "^./w$k/"); do
		if [ -e "$TIER/$f" ]; then
			[ "$f" = "$last" ] && ((tr > 0)) ||
				fail "segment $f of records <= $mid is still there after DELETE ?upto=$mid (worker $k: tier_records=$tr)"
		else
			gone=$((gone + 1))
		fi
	done
done
log "DELETE ?upto=$mid: $gone of $(printf '%s\n' "$old" | wc -l) segment files deleted, total_tier_records=$(field "$js" total_tier_records), $(nacks "$ACKS") acks left"
((gone >= 1)) || fail "DELETE ?upto=$mid past both tiers deleted no segment file: $old"
stop_sup
check_server_log
dump_slices stopped

# ---- 5. retention on both tiers: --retain-bytes 16M, 8 MiB per worker (more than its pool holds) ----
start_sup --retain-bytes 16M
: >"$ACKS"
tier_load 300 1000
load_end 300
sleep 1 # retention runs on every tick (250 ms) and after every destage job
js=$(stats)
grep -q 'retention: dropped' "$WAL_LOG" || fail "retention: nothing dropped"
for k in 0 1; do
	b=$(worker_field "$js" $k bytes)
	tr=$(worker_field "$js" $k tier_records)
	mine=$(awk -v k=$k '($1 - 1) % 2 == k {print $1}' "$ACKS" | sort -n)
	ab=$(awk -v k=$k '($1 - 1) % 2 == k {b += $4} END {print b + 0}' "$ACKS")
	o=404
	((ab > 8388608)) || o=200 # a worker that got no more than its share drops nothing
	old=$(printf '%s\n' "$mine" | head -n 1) new=$(printf '%s\n' "$mine" | tail -n 1)
	log "retention: worker $k keeps $b of the $ab bytes it got ($tr records in its tier); oldest ack $old ($o expected), newest $new"
	((b <= 8388608)) || fail "retention: worker $k keeps $b bytes (more than 16M / 2)"
	for q in "$old:$o" "$new:200"; do
		st=$(in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$HOST:$PORT/log/${q%:*}")
		[ "$st" = "${q#*:}" ] || fail "retention: GET of worker $k's record ${q%:*} answered $st, expected ${q#*:}"
	done
done
((TOTAL = $(field "$js" total_tier_records), TOTAL > 0)) || fail "retention: nothing in the tiers: $js"
stop_sup
check_server_log
log "ok: $(nacks "$ACKS") acknowledged records left, all present and identical"
