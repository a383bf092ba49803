#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Acknowledged means durable, for paste-kv, on every transport (paste, kernel, io_uring): eight connections pipeline writes
# of binary values - SETs up to 1500 bytes (many straddle segments and take the copy-once path),
# SETs of 2-300 KB (big strings: a list of references to the frames they arrived in) and HSETs
# (one piece per field) - and log every acknowledgement the moment they read it; paste-kv is killed with SIGKILL at a random moment; after the
# restart (recovery) every key the client saw acknowledged holds its last acknowledged value or a
# later one, byte-identical - also the keys of every earlier round, over several kills.
. "$(dirname "$0")/lib.sh"

PASTE_KV=$PASTE_BUILD/paste-kv
KV_TOOL=$PASTE_SRC/tests/integration/kv_tool.py
PORT=6379
ROUNDS=${KV_CRASH_ROUNDS:-4}
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
		args=(--transport "$tr" --ip "$SRV_IP")
	fi
	rm -f "$POOL"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL" --pool-size 512M
	for ((r = 1; r <= ROUNDS; r++)); do
		logs+=("$LOGDIR/acked.$tr.$r")
		in_cli python3 "$KV_TOOL" load "$host" "$PORT" "${logs[-1]}" "$tr$r" \
			>"$LOGDIR/load.$tr.$r.txt" 2>&1 &
		lpid=$!
		track_pid "$lpid"
		# the random moment counts from the first acknowledged SET: a loaded machine can take
		# most of a second to start the client, and a kill before any ack tests nothing
		for ((i = 0; i < 200; i++)); do
			[ -s "${logs[-1]}" ] && break
			sleep 0.05
		done
		ms=$((300 + RANDOM % 2500))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		kill -KILL "$ECHO_PID"
		wait "$ECHO_PID" 2>/dev/null || true
		untrack_pid "$ECHO_PID"
		wait "$lpid" || true # the connections fail (reset, or time out on the paste path)
		untrack_pid "$lpid"
		n=$(wc -l <"${logs[-1]}")
		log "$tr round $r: SIGKILL ${ms} ms after the first ack, $n SETs acknowledged"
		start_kv "${args[@]}" --port "$PORT" --pool "$POOL"
		grep -q 'pool_was_clean=0' "$ECHO_LOG" || fail "the pool claims a clean shutdown after SIGKILL"
		in_cli python3 "$KV_TOOL" check "$host" "$PORT" "${logs[@]}" >"$LOGDIR/check.$tr.$r.txt" 2>&1 ||
			{ cat "$LOGDIR/check.$tr.$r.txt" >&2; fail "$tr round $r: an acknowledged SET was lost"; }
		log "$tr round $r: $(tail -n 1 "$LOGDIR/check.$tr.$r.txt")"
	done
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
}

for transport in ${KV_TEST_TRANSPORTS:-paste kernel io_uring}; do
	crash_rounds "$transport"
done
