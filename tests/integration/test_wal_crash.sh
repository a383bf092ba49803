#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Acknowledged means durable, for paste-wal, in each mode (paste transport, kernel transport,
# io_uring transport, kernel transport + --sync fdatasync). Each round restarts the server on the same pool (and log file),
# runs wal_client.py's load (connections with pipelined POSTs of 64 B..64 KiB; every 201 is
# appended to an ack file at once) and SIGKILLs the server at a random moment under that load.
# Then:
#  - pool modes: paste-wal-dump opens the pool in a new process (recovery) and its --raw output
#    must hold every acknowledged record byte for byte, and nothing that was never sent;
#  - the next start must report recovered >= every ack so far, next > the highest acked seq, and
#    (pool modes: a process crash cannot tear a record) dropped=0; on the paste transport it must
#    replace the stale XDP program the killed process left behind.
# After the last round the server is started once more, the whole log is read back over HTTP and
# checked the same way, and SIGTERM must end it with status 0 (its frame accounting included).
#
# Environment: PASTE_WAL_MODES (default "paste kernel io_uring fdatasync"), PASTE_CRASH_ROUNDS (default 3),
# PASTE_CRASH_SEED (payloads and kill times; default random, printed), plus lib.sh's.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/wal_lib.sh"

MODES=${PASTE_WAL_MODES:-paste kernel io_uring fdatasync}
ROUNDS=${PASTE_CRASH_ROUNDS:-3}
LOGFILE=/dev/shm/paste-test-$$-wal.log
CLEANUP_FILES+=("$LOGFILE")
log "seed $SEED, $ROUNDS rounds per mode (PASTE_CRASH_SEED=$SEED reproduces payloads and kill times)"

run_mode() {
	local mode=$1 acks=$LOGDIR/acks.$1 srv host r before after ms cpid rc sum
	case $mode in
	paste)
		host=$STACK_IP
		srv=(--ifname "$VETH_SRV" --ip "$STACK_IP" --pool "$POOL" --pool-size 2G)
		;;
	kernel | io_uring)
		host=$SRV_IP
		srv=(--transport "$mode" --ip "$SRV_IP" --pool "$POOL" --pool-size 2G)
		;;
	fdatasync)
		host=$SRV_IP
		srv=(--transport kernel --ip "$SRV_IP" --pool "$POOL" --pool-size 256M --sync fdatasync
			--log-file "$LOGFILE")
		;;
	esac
	srv+=(--port $PORT)
	rm -f "$POOL" "$LOGFILE" "$acks"
	for ((r = 1; r <= ROUNDS; r++)); do
		before=$(nacks "$acks")
		start_wal "${srv[@]}"
		if ((r > 1)); then
			[ "$(field "$READY" recovered)" -ge "$before" ] ||
				fail "$mode round $r: recovered $(field "$READY" recovered), but $before were acknowledged"
			[ "$(field "$READY" next)" -gt "$(max_acked "$acks")" ] ||
				fail "$mode round $r: next=$(field "$READY" next), but seq $(max_acked "$acks") was acknowledged"
			if [ "$mode" != fdatasync ]; then
				[ "$(field "$READY" dropped)" = 0 ] || fail "$mode round $r: recovery cut records"
			fi
			if [ "$mode" = paste ]; then
				grep -q 'replaced a stale steering program' "$WAL_LOG" ||
					fail "$mode round $r: the stale XDP program was not replaced"
			fi
		fi
		# --max-requests bounds a round by count too: every record is kept, and a machine twice
		# as fast as this one (~12,000 POSTs per connection before a kill) must not fill the pool.
		ip netns exec "$NS_CLI" python3 "$CLIENT_PY" load --host "$host" --port $PORT --conns 6 \
			--depth 4 --duration 4 --stall 2 --grace 3 --max-size 65536 --seed "$SEED" \
			--conn-base $((r * 100)) --max-requests 20000 --ack-file "$acks" >"$LOGDIR/load.$mode.$r.log" 2>&1 &
		cpid=$!
		track_pid $cpid
		# The kill comes 0.7-2 s into the load (it was 0.7-3 s): every round checks the records of
		# all rounds so far (the dump, and over HTTP at the end), so the test's time grows with them.
		ms=$((700 + RANDOM % 1300))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		kill -0 "$WAL_PID" 2>/dev/null || fail "$mode round $r: paste-wal died on its own"
		kill -KILL "$WAL_PID"
		wait "$WAL_PID" 2>/dev/null || true
		untrack_pid "$WAL_PID"
		ECHO_PID=
		check_server_log
		rc=0
		wait $cpid || rc=$?
		untrack_pid $cpid
		sum=$(grep '^wal_client: load' "$LOGDIR/load.$mode.$r.log" || true)
		[ $rc -eq 0 ] && [ -n "$sum" ] || { cat "$LOGDIR/load.$mode.$r.log" >&2; fail "$mode round $r: client status $rc"; }
		[ "$(field "$sum" errors)" = 0 ] || fail "$mode round $r: the server refused requests: $sum"
		after=$(nacks "$acks")
		log "$mode round $r: SIGKILL at ${ms} ms; $sum; $((after - before)) new acks, $after in all"
		[ "$after" -gt "$before" ] || fail "$mode round $r: nothing was acknowledged"
		[ "$mode" = fdatasync ] || dump_verify "$mode.$r" "$acks"
	done
	# Recover once more, read everything back over HTTP, shut down cleanly.
	start_wal "${srv[@]}"
	[ "$(field "$READY" recovered)" -ge "$(nacks "$acks")" ] || fail "$mode: final restart lost records"
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" verify --host "$host" --port $PORT --ack-file "$acks" --seed "$SEED" \
		--strict >"$LOGDIR/verify.$mode.log" 2>&1 || { cat "$LOGDIR/verify.$mode.log" >&2; fail "$mode: records read back differ"; }
	log "$mode: $(tail -n 1 "$LOGDIR/verify.$mode.log")"
	stop_wal
	check_server_log
	log "$mode: $ROUNDS kill -9 rounds, $(nacks "$acks") acknowledged records all present and identical"
}

for m in $MODES; do
	log "==== mode $m ===="
	run_mode "$m"
done
