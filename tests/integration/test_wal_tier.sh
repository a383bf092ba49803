#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-wal's capacity tier (--tier-dir): a pool far too small for the load (8 MiB, ~3,500 frames)
# with its oldest records destaged to segment files on an ordinary file system (/var/tmp).
#  - a SIGKILL at every step of a destage job (PASTE_WAL_TIER_KILL_AT: tier word stored, segment
#    written, synced, pool head moved, frames released), then the same checks as below;
#  - kill -9 rounds: each round restarts the server on the same pool and tier, runs wal_client.py's
#    load (pipelined POSTs of 64 B..16 KiB; every 201 goes to an ack file at once) and SIGKILLs the
#    server at a random moment, while destage jobs run. No request may be refused (507: the tier
#    has room, so a POST that finds the pool short of frames must wait, not fail). Each restart
#    must report recovered >= every ack, next > the highest acked seq and dropped=0, and (after the
#    first round) records in the tier; before it, paste-wal-dump --tier-dir --verify --raw reads
#    both tiers offline and every acknowledged record must be there byte for byte, nothing else.
#  - then: every acknowledged record read back over HTTP (ranges across both tiers) byte for byte,
#    dense sequence numbers, nothing never sent; the acknowledged bytes are several times the
#    pool; /stats shows destaged records, tier reads, no 507.
#  - DELETE into the middle of the tier: segment files deleted, the cut record 404, the next one
#    200 from the tier; a clean restart keeps exactly that; SIGTERM exits 0 (frame accounting).
#  - retention: --retain-bytes 4M keeps at most 4 MiB under load (and says so on stderr),
#    --retain-secs 3 empties both tiers once idle;
#  - a kill at 'tiered' on the empty tier, a DELETE of everything, a clean stop: the start after
#    must serve (an empty tier's word once outlived the DELETE and made it refuse).
#
# Environment: PASTE_TIER_TRANSPORT (kernel, the default, or paste), PASTE_CRASH_ROUNDS (default 3), PASTE_CRASH_SEED (default random, printed), PASTE_TIER_BASE
# (directory for the tier, default /var/tmp: must not be tmpfs to mean anything), plus lib.sh's.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/wal_lib.sh"

ROUNDS=${PASTE_CRASH_ROUNDS:-3}
TRANSPORT=${PASTE_TIER_TRANSPORT:-kernel}
TIER=${PASTE_TIER_BASE:-/var/tmp}/paste-test-$$-tier
CLEANUP_DIRS+=("$TIER")
POOL_SIZE=$((8 << 20))
command -v curl >/dev/null || fail "curl not installed (scripts/deps installs it)"
log "seed $SEED, $ROUNDS kill -9 rounds (PASTE_CRASH_SEED=$SEED reproduces payloads and kill times)"

case $TRANSPORT in
kernel) HOST=$SRV_IP SRV=(--transport kernel --ip "$SRV_IP") ;;
paste) HOST=$STACK_IP SRV=(--ifname "$VETH_SRV" --ip "$STACK_IP") ;;
*) fail "PASTE_TIER_TRANSPORT must be kernel or paste" ;;
esac
SRV+=(--port $PORT --pool "$POOL" --pool-size $POOL_SIZE --ring-size 512 --reserve-frames 512
	--tier-dir "$TIER" --tier-size 1G)

stats() { in_cli curl -sS --max-time 10 "http://$HOST:$PORT/stats"; }
http_status() { in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }

# Usage errors exit 2 and name the problem.
for bad in "--sync fdatasync --log-file $LOGDIR/x.log|needs --sync pmem" "--tier-start 20 --tier-stop 30|must be below" \
	"--tier-size 10K|--tier-size" "--tier-start 0|--tier-start" "--retain-bytes 0|--retain-bytes"; do
	rc=0
	# shellcheck disable=SC2086 # the options are words
	"$WAL" --transport kernel --port $PORT --tier-dir "$TIER" ${bad%|*} >/dev/null 2>"$LOGDIR/usage.err" || rc=$?
	[ $rc = 2 ] && grep -qF -- "${bad#*|}" "$LOGDIR/usage.err" ||
		fail "paste-wal ${bad%|*}: exit $rc, $(cat "$LOGDIR/usage.err")"
done
[ ! -e "$TIER" ] || fail "a usage error created $TIER"

# start_srv [ARGS]: paste-wal on the pool and tier. On the paste transport a restart right after the
# last process ended can find the queue still bound (the kernel releases an AF_XDP socket's
# binding asynchronously: EBUSY), so it waits a second first.
start_srv() {
	[ "$TRANSPORT" != paste ] || [ "$WAL_N" = 0 ] || sleep 1
	start_wal "${SRV[@]}" "$@"
}

# check_ready TAG: the server just started on the log so far: nothing acknowledged is missing.
check_ready() {
	[ "$(field "$READY" records)" -ge "$(nacks "$ACKS")" ] ||
		fail "$1: the log holds $(field "$READY" records) records, but $(nacks "$ACKS") were acknowledged"
	[ "$(field "$READY" next)" -gt "$(max_acked "$ACKS")" ] ||
		fail "$1: next=$(field "$READY" next), but seq $(max_acked "$ACKS") was acknowledged"
	[ "$(field "$READY" dropped)" = 0 ] || fail "$1: recovery cut records"
}

# load_bg TAG CONN_BASE: wal_client.py's load in the background (cpid), acks to ACKS.
load_bg() {
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" load --host "$HOST" --port $PORT --conns 4 \
		--depth 2 --duration 5 --stall 3 --grace 3 --max-size 16384 --seed "$SEED" \
		--conn-base "$2" --ack-file "$ACKS" >"$LOGDIR/load.$1.log" 2>&1 &
	cpid=$!
	track_pid $cpid
}

# load_end TAG: the load ended without a refused request; its summary line goes to SUM.
load_end() {
	local rc=0
	wait $cpid || rc=$?
	untrack_pid $cpid
	SUM=$(grep '^wal_client: load' "$LOGDIR/load.$1.log" || true)
	[ $rc -eq 0 ] && [ -n "$SUM" ] || { cat "$LOGDIR/load.$1.log" >&2; fail "$1: client status $rc"; }
	[ "$(field "$SUM" errors)" = 0 ] || fail "$1: the server refused requests (507 with a tier that has room?): $SUM"
}

# killed_at STEP TAG CONN_BASE: paste-wal started to kill itself at destage step STEP (first start
# only), under the load TAG; waits for the kill (status 137) and the load's end (load_end TAG).
killed_at() {
	local i rc=0
	export PASTE_WAL_TIER_KILL_AT=$1
	start_srv
	unset PASTE_WAL_TIER_KILL_AT
	load_bg "$2" "$3"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$WAL_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$WAL_PID" 2>/dev/null || rc=$?
	untrack_pid "$WAL_PID"
	[ $rc = 137 ] || fail "PASTE_WAL_TIER_KILL_AT=$1 ($2): paste-wal did not kill itself (status $rc)"
	load_end "$2"
}

rm -rf "$TIER" "$POOL" "$ACKS"
# A kill at every step of a destage job (the test hook PASTE_WAL_TIER_KILL_AT, wal_tier.c): the
# first job of an empty tier right after its tier word is stored, then later jobs after the
# segment write, after its fdatasync, after the pool head moved, after the frames were released.
# check_step STEP: the restart after a kill at STEP cut the unswitched copy (before the switch) or
# found nothing to cut (after it).
check_step() {
	local t
	check_ready "kill at $1"
	t=$(field "$READY" tier_trimmed)
	case ${1%:*} in
	tiered | written | synced) ((t >= 1)) || fail "after a kill at $1 the segment copy was not cut: $READY" ;;
	*) [ "$t" = 0 ] || fail "after a kill at $1 recovery cut a switched copy: $READY" ;;
	esac
}
n=0
prev=
for step in tiered:1 written:3 synced:3 switched:3 released:3; do
	n=$((n + 1))
	start_srv
	[ -z "$prev" ] || check_step "$prev"
	stop_wal
	prev=$step
	killed_at "$step" "step$n" $((n * 10))
	log "killed at step $step: $SUM; $(nacks "$ACKS") acks in all"
	dump_verify "step$n" "$ACKS" --tier-dir "$TIER"
done
start_srv
check_step "$prev"
stop_wal

for ((r = 1; r <= ROUNDS; r++)); do
	before=$(nacks "$ACKS")
	start_srv
	check_ready "round $r"
	[ "$(field "$READY" tier_records)" -gt 0 ] || fail "round $r: no record is in the tier"
	load_bg "round$r" $((r * 100))
	ms=$((1500 + RANDOM % 2500))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -0 "$WAL_PID" 2>/dev/null || fail "round $r: paste-wal died on its own"
	st=$(stats) || fail "round $r: /stats failed under load"
	kill -KILL "$WAL_PID"
	wait "$WAL_PID" 2>/dev/null || true
	untrack_pid "$WAL_PID"
	check_server_log
	load_end "round$r"
	sum=$SUM
	log "round $r: SIGKILL at ${ms} ms with tier_jobs=$(field "$st" tier_jobs) tier_destaging=$(field "$st" tier_destaging) stalls=$(field "$st" stalls); $sum; $(nacks "$ACKS") acks in all"
	[ "$(nacks "$ACKS")" -gt "$before" ] || fail "round $r: nothing was acknowledged"
	dump_verify "round$r" "$ACKS" --tier-dir "$TIER"
done

# Recover, read everything back across both tiers.
start_srv
[ "$(field "$READY" records)" -ge "$(nacks "$ACKS")" ] || fail "final restart lost records"
[ "$(field "$READY" tier_records)" -gt 0 ] || fail "no record is in the tier after the rounds"
bytes=$(acked_bytes "$ACKS")
((bytes > 2 * POOL_SIZE)) || fail "only $bytes bytes acknowledged: the load did not fill the pool twice over"
ip netns exec "$NS_CLI" python3 "$CLIENT_PY" verify --host "$HOST" --port $PORT --ack-file "$ACKS" \
	--seed "$SEED" --strict >"$LOGDIR/verify.log" 2>&1 || { cat "$LOGDIR/verify.log" >&2; fail "records read back differ"; }
log "$(tail -n 1 "$LOGDIR/verify.log"); $bytes acknowledged bytes into a $POOL_SIZE-byte pool"
st=$(stats)
printf '%s' "$st" | python3 -c 'import json, sys; json.load(sys.stdin)' || fail "/stats is not valid JSON: $st"
[ "$(field "$st" tier_reads)" -gt 0 ] || fail "the read-back served nothing from the tier: $st"
[ "$(field "$st" replies_5xx)" = 0 ] || fail "5xx replies: $st"

# DELETE into the middle of the tier: whole segments go, the rest is still served.
tfirst=$(field "$st" tier_first_seq)
tend=$(($(field "$st" tier_records) + tfirst))
segs=$(find "$TIER" -name 'seg-*.pwt' | wc -l)
((segs >= 2)) || fail "only $segs segment file(s) in $TIER"
cut=$((tfirst + (tend - tfirst) * 3 / 4))
out=$(in_cli curl -sS --max-time 10 -X DELETE "http://$HOST:$PORT/log?upto=$cut") || fail "DELETE failed"
[ "$(field "$out" first_seq)" = $((cut + 1)) ] || fail "DELETE upto=$cut answered $out"
[ "$(http_status "http://$HOST:$PORT/log/$cut")" = 404 ] || fail "record $cut still served after DELETE"
[ "$(http_status "http://$HOST:$PORT/log/$((cut + 1))")" = 200 ] || fail "record $((cut + 1)) not served after DELETE"
after=$(find "$TIER" -name 'seg-*.pwt' | wc -l)
st=$(stats)
((after < segs)) && [ "$(field "$st" tier_segments_deleted)" -gt 0 ] ||
	fail "DELETE upto=$cut left $after of $segs segment files: $st"
[ "$(field "$st" tier_first_seq)" = $((cut + 1)) ] || fail "tier_first_seq after DELETE: $st"
log "DELETE upto=$cut (tier was $tfirst..$((tend - 1))): segment files $segs -> $after"
stop_wal
check_server_log

# A clean restart keeps exactly what the DELETE left; a DELETE of everything empties both tiers.
start_srv
[ "$(field "$READY" first)" = $((cut + 1)) ] || fail "after restart first=$(field "$READY" first), not $((cut + 1))"
[ "$(http_status "http://$HOST:$PORT/log/$((cut + 1))")" = 200 ] || fail "record $((cut + 1)) lost at restart"
next=$(field "$READY" next)
out=$(in_cli curl -sS --max-time 10 -X DELETE "http://$HOST:$PORT/log?upto=$next") || fail "DELETE all failed"
[ "$(field "$out" records)" = 0 ] || fail "DELETE of everything answered $out"
[ -z "$(find "$TIER" -name 'seg-*.pwt')" ] || fail "segment files left after deleting everything: $(ls "$TIER")"
stop_wal
check_server_log
# Retention: at most 4 MiB of payload kept while loading, nothing after 3 s idle; never silently.
start_srv --retain-bytes 4M --retain-secs 3
ip netns exec "$NS_CLI" python3 "$CLIENT_PY" load --host "$HOST" --port $PORT --conns 4 --depth 4 \
	--duration 2 --max-size 65536 --seed "$SEED" --conn-base 900 --ack-file "$LOGDIR/acks.retain" \
	>"$LOGDIR/load.retain.log" 2>&1 || { cat "$LOGDIR/load.retain.log" >&2; fail "retention load failed"; }
sleep 0.6 # a tick
st=$(stats)
((bytes = $(field "$st" bytes), bytes <= 4 << 20)) || fail "--retain-bytes 4M, but $bytes bytes kept: $st"
[ "$(field "$st" retention_dropped_records)" -gt 0 ] || fail "retention dropped nothing: $st"
grep -q '^paste-wal: retention: dropped .* over --retain-bytes' "$WAL_LOG" || fail "retention was silent"
for ((i = 0; i < 100; i++)); do
	st=$(stats)
	[ "$(field "$st" records)" = 0 ] && break
	sleep 0.1
done
[ "$(field "$st" records)" = 0 ] || fail "--retain-secs 3: records left after ${i}00 ms idle: $st"
[ -z "$(find "$TIER" -name 'seg-*.pwt')" ] || fail "segment files left after retention emptied the log"
log "retention: $(printf '%s\n' "$st" | tr ',' '\n' | grep -E 'retention_' | tr -d '"' | tr '\n' ' ')"
stop_wal

# A kill right after an empty tier's word is stored, before the pool head moves ("tiered"), a
# restart that does not destage, a DELETE of everything and a clean stop: the next start must
# serve. Before the fix the word outlived the DELETE and that start refused ("the tier is
# damaged"); sim/tierpub found it.
killed_at tiered word 950
start_srv --tier-start 100 --tier-stop 99
[ "$(field "$READY" tier_records)" = 0 ] || fail "after the kill at tiered the tier is not empty: $READY"
next=$(field "$READY" next)
out=$(in_cli curl -sS --max-time 10 -X DELETE "http://$HOST:$PORT/log?upto=$next") || fail "DELETE failed"
[ "$(field "$out" records)" = 0 ] || fail "DELETE of everything answered $out"
stop_wal
start_srv
[ "$(field "$READY" records)" = 0 ] || fail "after DELETE of everything the restart found $READY"
stop_wal
log "an empty tier's word left by a kill at 'tiered' did not outlive a DELETE of everything (next=$next)"
log "$ROUNDS kill -9 rounds, $(nacks "$ACKS") acknowledged records all present and identical across pool and tier"
