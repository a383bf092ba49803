#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Multi-key writes are all-or-nothing under kill -9, on both transports: six connections repeat
# MULTI/EXEC (12 SETs, one a big string, and a 4-field HSET), MSET of 24 keys (two big) and HSET
# of 16 fields (one big), each on its own group of keys with values that encode the write's
# number; paste-kv is killed with SIGKILL 0.1-1.1 s after the first acknowledgement, 8 times per transport; after each restart every group
# holds the values of one write only (all old or all new), at least the last acknowledged one,
# byte-identical - also the groups of every earlier round. The recovered line's tx_undone counts
# the writes the undo log rolled back (kv_tx.c).
. "$(dirname "$0")/lib.sh"

PASTE_KV=$PASTE_BUILD/paste-kv
KV_TOOL=$PASTE_SRC/tests/integration/kv_tx_tool.py
PORT=6379
ROUNDS=${KV_CRASH_ROUNDS:-8}
UNDONE=0
[ -x "$PASTE_KV" ] || fail "$PASTE_KV not built"
command -v python3 >/dev/null || fail "python3 not found"

# start_kv ARGS...: as in test_kv.sh (lib.sh's paste-echo helpers then apply to paste-kv).
start_kv() {
	local i rc=0
	ECHO_N=$((ECHO_N + 1))
	ECHO_LOG=$LOGDIR/kv.$ECHO_N.log
	ip netns exec "$NS_SRV" "$PASTE_KV" "$@" >"$ECHO_LOG" 2>&1 &
	ECHO_PID=$!
	track_pid "$ECHO_PID"
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		if grep -q '^paste-kv: ready' "$ECHO_LOG"; then
			log "$(grep -m1 '^paste-kv: recovered' "$ECHO_LOG")"
			return 0
		fi
		if ! kill -0 "$ECHO_PID" 2>/dev/null; then
			wait "$ECHO_PID" || rc=$?
			untrack_pid "$ECHO_PID"
			fail "paste-kv exited with status $rc before it was ready"
		fi
		sleep 0.1
	done
	fail "paste-kv not ready after ${READY_TIMEOUT}s"
}

crash_rounds() {
	local tr=$1 args host r ms lpid logs=() n i
	if [ "$tr" = paste ]; then
		host=$STACK_IP
		args=(--ifname "$VETH_SRV" --ip "$STACK_IP")
	else
		host=$SRV_IP
		args=(--transport kernel --ip "$SRV_IP")
	fi
	rm -f "$POOL"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL" --pool-size 512M
	for ((r = 1; r <= ROUNDS; r++)); do
		logs+=("$LOGDIR/acked.$tr.$r")
		in_cli python3 "$KV_TOOL" load "$host" "$PORT" "${logs[-1]}" "$tr$r" \
			>"$LOGDIR/load.$tr.$r.txt" 2>&1 &
		lpid=$!
		track_pid "$lpid"
		for ((i = 0; i < 300; i++)); do # the kill comes once writes are being acknowledged
			grep -qv " 0$" "${logs[-1]}" 2>/dev/null && break
			sleep 0.1
		done
		ms=$((100 + RANDOM % 1000))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		kill -KILL "$ECHO_PID"
		wait "$ECHO_PID" 2>/dev/null || true
		untrack_pid "$ECHO_PID"
		wait "$lpid" || true # the connections fail (reset, or time out on the paste path)
		untrack_pid "$lpid"
		n=$(grep -vc " 0$" "${logs[-1]}" || true)
		log "$tr round $r: SIGKILL after ${ms} ms, $n multi-key writes acknowledged"
		start_kv "${args[@]}" --port "$PORT" --pool "$POOL"
		grep -q 'pool_was_clean=0' "$ECHO_LOG" || fail "the pool claims a clean shutdown after SIGKILL"
		UNDONE=$((UNDONE + $(grep -m1 '^paste-kv: recovered' "$ECHO_LOG" | sed -n 's/.* tx_undone=\([0-9]*\).*/\1/p')+0))
		in_cli python3 "$KV_TOOL" check "$host" "$PORT" "${logs[@]}" >"$LOGDIR/check.$tr.$r.txt" 2>&1 ||
			{ cat "$LOGDIR/check.$tr.$r.txt" >&2; fail "$tr round $r: a multi-key write was torn or lost"; }
		log "$tr round $r: $(tail -n 1 "$LOGDIR/check.$tr.$r.txt")"
	done
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
}

for transport in ${KV_TEST_TRANSPORTS:-paste kernel}; do
	crash_rounds "$transport"
done
log "undo entries rolled back over all restarts: $UNDONE"
