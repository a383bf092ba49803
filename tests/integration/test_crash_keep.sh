#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# shellcheck disable=SC2034 # ECHO_PID and ECHO_LOG are read by lib.sh (fail, try_stats)
# Real process crash on the durable path. paste-keepserver keeps every request in place in the pool
# and appends it to a log; its replies (sent only after the round's fence) name the record, and
# paste-keepclient writes every acknowledged request to an ack file. Each round SIGKILLs the server
# at a random moment while the clients are mid-stream, then paste-logcheck reopens the pool in a new
# process (recovery) and checks the log against what the clients saw acknowledged: every acked
# record present with exactly the bytes sent, seqs dense, no record with content never sent, KEPT
# frames == frames the records name (with matching reference counts), allocator audit. The next
# round restarts the server on the same pool: the stale XDP program must be replaced and the log
# recovered with at least every record acknowledged so far. Then a clean run and shutdown, and the
# refusal paths (log full, pool full) on a second pool.
#
# Environment: PASTE_CRASH_ROUNDS (default 5), PASTE_CRASH_SEED (payload seed and kill times;
# default random, printed), plus lib.sh's.
. "$(dirname "$0")/lib.sh"
testbed_up

bin() {
	local f
	for f in "$PASTE_BUILD/tests/$1" "$PASTE_BUILD/$1"; do
		[ -x "$f" ] && { printf '%s\n' "$f"; return 0; }
	done
	fail "$1 not built (looked in $PASTE_BUILD/tests and $PASTE_BUILD)"
}
KEEPSERVER=$(bin paste-keepserver)
KEEPCLIENT=$(bin paste-keepclient)
LOGCHECK=$(bin paste-logcheck)

ROUNDS=${PASTE_CRASH_ROUNDS:-5}
SEED=${PASTE_CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED # kill times follow the seed too
PORT=9
ACKS=$LOGDIR/acks.txt
POOL2=/dev/shm/paste-test-$$-full.pool
CLEANUP_FILES+=("$POOL2")
rm -f "$ACKS" "$LOGDIR"/*.acks
SRV=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port "$PORT")
# 6 clients at 1 MiB/s each for at most ~3.5 s a round: well inside the pool over all rounds.
CLIENT=(--connect "$STACK_IP:$PORT" --conns 6 --duration 4 --rate 1048576 --depth 4 --stall 1.5
	--grace 3 --seed "$SEED")
log "seed $SEED, $ROUNDS rounds (PASTE_CRASH_SEED=$SEED reproduces the payloads and kill times)"

UNACKED=0
KS_PID=
KS_LOG=
KS_N=0
READY=

# start_keep ARGS...: paste-keepserver ARGS in the server namespace; wait for its ready line (READY).
start_keep() {
	KS_N=$((KS_N + 1))
	KS_LOG=$LOGDIR/keepserver.$KS_N.log
	log "start: paste-keepserver $*"
	ECHO_LOG=$KS_LOG # so that fail() shows this server's log and stats
	start_ready keepserver "$KS_LOG" ip netns exec "$NS_SRV" "$KEEPSERVER" "$@"
	KS_PID=$READY_PID
	ECHO_PID=$KS_PID
}

# field LINE NAME: NAME=value out of a ready/stats/summary line.
field() {
	local v
	v=$(printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1)
	[ -n "$v" ] || fail "no field '$2' in: $1"
	printf '%s\n' "$v"
}

# stop_keep: SIGTERM, wait; fails unless it exits 0 (its own frame accounting check included).
stop_keep() {
	local rc=0 i
	kill -TERM "$KS_PID"
	for ((i = 0; i < 200; i++)); do
		kill -0 "$KS_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$KS_PID" || rc=$?
	untrack_pid "$KS_PID"
	log "$(grep '^stats ' "$KS_LOG" | tail -n 1)"
	ECHO_PID=
	[ $rc -eq 0 ] || fail "paste-keepserver exited with status $rc after SIGTERM"
}

# run_keepclient TAG ARGS...: the client in the client namespace, foreground; summary in CLIENT_SUM.
run_keepclient() {
	local tag=$1 rc=0
	shift
	ip netns exec "$NS_CLI" "$KEEPCLIENT" "$@" >"$LOGDIR/client.$tag.log" 2>&1 || rc=$?
	CLIENT_SUM=$(grep '^keepclient: conns=' "$LOGDIR/client.$tag.log" || true)
	log "${CLIENT_SUM:-client $tag: no summary}"
	if [ $rc -ne 0 ] || [ -z "$CLIENT_SUM" ]; then
		cat "$LOGDIR/client.$tag.log" >&2
		fail "paste-keepclient ($tag) exited with status $rc"
	fi
}

# logcheck TAG POOL ACKS [ARGS...]: the offline check; its summary in CHECK_SUM.
logcheck() {
	local tag=$1 pool=$2 acks=$3 rc=0
	shift 3
	"$LOGCHECK" --pool "$pool" --acks "$acks" --seed "$SEED" "$@" >"$LOGDIR/logcheck.$tag.log" 2>&1 ||
		rc=$?
	CHECK_SUM=$(grep '^logcheck: ' "$LOGDIR/logcheck.$tag.log" | tail -n 1 || true)
	log "${CHECK_SUM:-logcheck $tag: no summary}"
	if [ $rc -ne 0 ]; then
		tail -n 30 "$LOGDIR/logcheck.$tag.log" >&2
		fail "paste-logcheck ($tag) failed with status $rc"
	fi
}

# check_server_log [ALLOW]: no error from the library or the server in the current server's log
# (lines matching the extended regex ALLOW excepted).
check_server_log() {
	local allow=${1:-'^$'} bad
	bad=$(grep -E '^(libpaste-xdp: error:|keepserver: )' "$KS_LOG" | grep -v '^keepserver: ready' |
		grep -Ev "$allow" || true)
	if [ -n "$bad" ]; then
		printf '%s\n' "$bad" | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -n 10 >&2
		fail "errors in $KS_LOG ($(printf '%s\n' "$bad" | wc -l) lines, kinds above)"
	fi
}

nacks() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
max_acked() { if [ -s "$1" ]; then awk 'BEGIN{m=0} $1>m{m=$1} END{print m}' "$1"; else echo 0; fi; }

# ---- crash rounds ----------------------------------------------------------------------------

for ((r = 1; r <= ROUNDS; r++)); do
	before=$(nacks "$ACKS")
	extra=()
	# Even rounds pack small pieces into copy frames; round 3 sends requests up to 1 MiB. An
	# emulated media latency of 0, 5 or 2 ms per fence keeps the server inside the window between
	# appends and their replies for a good part of the time (records the client never hears of).
	((r % 2 == 0)) && extra+=(--copy-threshold 512)
	delays=(0 5000000 2000000)
	extra+=(--fence-delay "${delays[(r - 1) % 3]}")
	max=$((r == 3 ? 1048576 : 262144))
	start_keep "${SRV[@]}" --pool "$POOL" --pool-size 256M --log-region 16M "${extra[@]}"
	if ((r > 1)); then
		rec=$(field "$READY" recovered)
		next=$(field "$READY" next)
		[ "$rec" -ge "$before" ] ||
			fail "round $r: recovered=$rec records, but $before were acknowledged before the crash"
		[ "$next" -gt "$(max_acked "$ACKS")" ] ||
			fail "round $r: log next=$next, but seq $(max_acked "$ACKS") was acknowledged"
		# A process crash loses no store; only an append the kill interrupted can be cut.
		[ "$(field "$READY" dropped)" -le 1 ] ||
			fail "round $r: recovery cut $(field "$READY" dropped) records after a process crash"
		grep -q 'replaced a stale steering program' "$KS_LOG" ||
			fail "round $r: no 'replaced a stale steering program' after the SIGKILL"
	fi

	ip netns exec "$NS_CLI" "$KEEPCLIENT" "${CLIENT[@]}" --conn-base $((r * 1000)) --max-size $max \
		--ack-file "$ACKS" >"$LOGDIR/client.$r.log" 2>&1 &
	cpid=$!
	track_pid "$cpid"
	ms=$((700 + RANDOM % 1300)) # 0.7-2 s into the clients' 4 s (each round's check reads every record so far)
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	kill -0 "$KS_PID" 2>/dev/null || fail "round $r: paste-keepserver died on its own"
	kill -0 "$cpid" 2>/dev/null || { cat "$LOGDIR/client.$r.log" >&2; fail "round $r: client ended before the kill"; }
	kill -USR1 "$KS_PID" # a last stats line for the log, if it makes it before the kill
	sleep 0.05
	kill -KILL "$KS_PID"
	wait "$KS_PID" 2>/dev/null || true
	untrack_pid "$KS_PID"
	ECHO_PID=
	check_server_log
	rc=0
	wait "$cpid" || rc=$?
	untrack_pid "$cpid"
	sum=$(grep '^keepclient: conns=' "$LOGDIR/client.$r.log" || true)
	log "round $r: server SIGKILLed at ${ms} ms; ${sum:-no client summary}"
	[ $rc -eq 0 ] && [ -n "$sum" ] || { cat "$LOGDIR/client.$r.log" >&2; fail "round $r: client status $rc"; }
	after=$(nacks "$ACKS")
	[ "$after" -gt "$before" ] || fail "round $r: no request was acknowledged"
	[ "$(field "$sum" errors)" = 0 ] || fail "round $r: the server refused requests (pool too small?)"

	logcheck "$r" "$POOL" "$ACKS"
	UNACKED=$(field "$CHECK_SUM" unacked)
	[ "$(field "$CHECK_SUM" acked)" = "$after" ] || fail "round $r: logcheck read $(field "$CHECK_SUM" acked) acks, the file has $after"
	log "round $r: $((after - before)) acknowledged this round, $after in all; log holds $(field "$CHECK_SUM" records)"
done

# ---- after the last crash: recover, serve cleanly, shut down, check the clean pool -----------

before=$(nacks "$ACKS")
start_keep "${SRV[@]}" --pool "$POOL" --log-region 16M
[ "$(field "$READY" recovered)" -ge "$before" ] || fail "final restart: recovered fewer records than acknowledged"
run_keepclient clean "${CLIENT[@]}" --conn-base $(((ROUNDS + 1) * 1000)) --duration 1 --max-size 65536 --ack-file "$ACKS"
[ "$(field "$CLIENT_SUM" "done")" = 6 ] || fail "clean run: every connection should end normally: $CLIENT_SUM"
[ "$(field "$CLIENT_SUM" errors)" = 0 ] || fail "clean run: refused requests"
[ "$(nacks "$ACKS")" -gt "$before" ] || fail "clean run: nothing acknowledged"
# Malformed lengths (0, and 2 MiB > 1 MiB): the connection is closed without a reply.
for hdr in '\0\0\0\0' '\0\040\0\0'; do
	out=$(timeout 10 ip netns exec "$NS_CLI" bash -c \
		"exec 3<>/dev/tcp/$STACK_IP/$PORT && printf '$hdr' >&3 && od -An -tx1 <&3") ||
		fail "malformed request: no close from the server (status $?)"
	[ -z "$out" ] || fail "malformed request: the server replied '$out'"
done
stop_keep
[ "$(field "$(grep '^stats ' "$KS_LOG" | tail -n 1)" malformed)" = 2 ] ||
	fail "the server did not count 2 malformed requests"
check_server_log '^keepserver: request length'
if xdp_attached; then
	fail "an XDP program is still attached to $VETH_SRV after SIGTERM"
fi
logcheck clean "$POOL" "$ACKS"
[ "$(field "$CHECK_SUM" was_clean)" = 1 ] || fail "the pool is not marked clean after SIGTERM"
[ "$(field "$CHECK_SUM" unacked)" = "$UNACKED" ] ||
	fail "the clean run appended records whose replies never reached the client"

# ---- refusals: a log too small, then a pool (reserve) too small; the server keeps serving ----

ACKS2=$LOGDIR/full.acks
start_keep "${SRV[@]}" --pool "$POOL2" --pool-size 64M --log-region 64K
run_keepclient logfull --connect "$STACK_IP:$PORT" --conns 4 --duration 1.5 --rate 8388608 --seed "$SEED" \
	--conn-base 20000 --max-size 262144 --ack-file "$ACKS2"
[ "$(field "$CLIENT_SUM" errors)" -gt 0 ] || fail "log full: no request was refused with a 64 KiB log"
[ "$(field "$CLIENT_SUM" acked)" -gt 0 ] || fail "log full: nothing acknowledged before the log filled"
[ "$(field "$CLIENT_SUM" "done")" = 4 ] || fail "log full: connections did not end normally"
stop_keep
check_server_log "^libpaste-xdp: error: log 'keep.log' is full"
logcheck logfull "$POOL2" "$ACKS2"
[ "$(field "$CHECK_SUM" records)" = "$(nacks "$ACKS2")" ] ||
	fail "log full: the log holds records nobody was told about after a clean run"

start_keep "${SRV[@]}" --pool "$POOL2" --log-region 64K --reserve-frames 1000000
run_keepclient poolfull --connect "$STACK_IP:$PORT" --conns 4 --duration 1 --rate 8388608 --seed "$SEED" \
	--conn-base 21000 --max-size 262144 --ack-file "$ACKS2"
[ "$(field "$CLIENT_SUM" acked)" = 0 ] || fail "pool full: requests acknowledged past the reserve"
[ "$(field "$CLIENT_SUM" errors)" -gt 0 ] || fail "pool full: no request refused"
[ "$(field "$CLIENT_SUM" "done")" = 4 ] || fail "pool full: connections did not end normally"
stop_keep # exit 0 includes: no frame held for RX, KEPT == the frames the log names
check_server_log
logcheck poolfull "$POOL2" "$ACKS2"

log "$ROUNDS crash rounds: $(nacks "$ACKS") acknowledged records verified after every crash;" \
	"$UNACKED records appended in a round the kill cut short (never acknowledged) verified too"
