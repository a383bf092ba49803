# SPDX-License-Identifier: BSD-2-Clause
# kv_lib.sh - what paste-kv's integration tests share (sourced after lib.sh): starting paste-kv in
# the server namespace, and kill -9 rounds driven by a load/check tool.

PASTE_KV=$PASTE_BUILD/paste-kv
[ -x "$PASTE_KV" ] || fail "$PASTE_KV not built"

# start_kv ARGS...: paste-kv in the server namespace, waiting for "paste-kv: ready". It is driven
# through lib.sh's paste-echo helpers (ECHO_PID/ECHO_LOG): fail, echo_stats and stop_echo apply.
start_kv() {
	ECHO_N=$((ECHO_N + 1))
	ECHO_LOG=$LOGDIR/kv.$ECHO_N.log
	log "start: paste-kv $*"
	need_testbed
	start_ready paste-kv "$ECHO_LOG" ip netns exec "$NS_SRV" "$PASTE_KV" "$@"
	ECHO_PID=$READY_PID
	log "$(grep -m1 '^paste-kv: recovered' "$ECHO_LOG" || true)"
}

# kv_target TR: where paste-kv listens on transport TR (paste, kernel, io_uring): KV_HOST, and the
# start_kv arguments that put it there in KV_ARGS.
kv_target() {
	if [ "$1" = paste ]; then
		KV_HOST=$STACK_IP
		KV_ARGS=(--ifname "$VETH_SRV" --ip "$STACK_IP")
	else
		KV_HOST=$SRV_IP
		KV_ARGS=(--transport "$1" --ip "$SRV_IP")
	fi
}

# crash_rounds TRANSPORT TOOL ROUNDS KILL_MIN_MS KILL_SPAN_MS: ROUNDS times, "TOOL load HOST PORT
# LOG TAG" in the client namespace, SIGKILL of paste-kv KILL_MIN_MS + random(KILL_SPAN_MS) after
# the first acknowledgement (a LOG line not ending in " 0"), restart on the same pool, then
# "TOOL check HOST PORT LOG..." over every round's LOG. Sums the restarts' tx_undone in UNDONE.
# KV_CRASH_ARGS (an array, default empty): more paste-kv options for every start; KV_PORT (6379)
# its port.
UNDONE=0
KV_CRASH_ARGS=()

# load_settle PID LOG: the end of a load whose server was just killed. Its connections fail at once
# on the kernel transport (reset); on the paste path they only time out (kv_tool's socket timeout,
# 3-10 s). The load logs each acknowledgement unbuffered the moment it reads it, so once LOG has
# not grown for 1 s after the kill, every reply the dead server sent has been read and logged (a
# dead paste-kv sends nothing more: its stack died with it; its last replies are already in the
# load's socket buffers): the load is then ended with SIGKILL instead of waiting out its timeouts.
# An acknowledgement that a starved load had not yet logged would only make the check weaker (a
# write it finds newer than the log says), never fail it.
load_settle() {
	local pid=$1 logf=$2 size last=-1 quiet=0
	while kill -0 "$pid" 2>/dev/null && ((quiet < 10)); do
		size=$(stat -c %s "$logf" 2>/dev/null || echo 0)
		if [ "$size" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0 last=$size; fi
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

crash_rounds() {
	local tr=$1 tool=$2 rounds=$3 kmin=$4 kspan=$5 args host r ms lpid logs=() n i port=${KV_PORT:-6379} rc
	kv_target "$tr"
	host=$KV_HOST
	args=("${KV_ARGS[@]}" "${KV_CRASH_ARGS[@]}")
	rm -f "$POOL"
	start_kv "${args[@]}" --port "$port" --pool "$POOL" --pool-size 512M
	for ((r = 1; r <= rounds; r++)); do
		logs+=("$LOGDIR/acked.$tr.$r")
		rm -f "${logs[-1]}" # one of an earlier run would end the wait below before this load starts
		need_testbed # not in_cli: the load's PID must be python's own (load_settle kills it)
		ip netns exec "$NS_CLI" python3 "$tool" load "$host" "$port" "${logs[-1]}" "$tr$r" \
			>"$LOGDIR/load.$tr.$r.txt" 2>&1 &
		lpid=$!
		track_pid "$lpid"
		for ((i = 0; i < 300; i++)); do # the kill comes once writes are being acknowledged
			grep -qv " 0$" "${logs[-1]}" 2>/dev/null && break
			sleep 0.1
		done
		ms=$((kmin + RANDOM % kspan))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		if ! kill -0 "$ECHO_PID" 2>/dev/null; then # it must not have ended on its own
			rc=0
			wait "$ECHO_PID" || rc=$?
			untrack_pid "$ECHO_PID"
			fail "$tr round $r: paste-kv ended before the SIGKILL (exit status $rc)"
		fi
		kill -KILL "$ECHO_PID"
		wait "$ECHO_PID" 2>/dev/null || true
		untrack_pid "$ECHO_PID"
		load_settle "$lpid" "${logs[-1]}"
		untrack_pid "$lpid"
		n=$(grep -vc " 0$" "${logs[-1]}" || true)
		log "$tr round $r: SIGKILL after ${ms} ms, $n writes acknowledged"
		start_kv "${args[@]}" --port "$port" --pool "$POOL"
		grep -q 'pool_was_clean=0' "$ECHO_LOG" || fail "the pool claims a clean shutdown after SIGKILL"
		UNDONE=$((UNDONE + $(grep -m1 '^paste-kv: recovered' "$ECHO_LOG" | sed -n 's/.* tx_undone=\([0-9]*\).*/\1/p')+0))
		in_cli python3 "$tool" check "$host" "$port" "${logs[@]}" >"$LOGDIR/check.$tr.$r.txt" 2>&1 ||
			{ cat "$LOGDIR/check.$tr.$r.txt" >&2; fail "$tr round $r: an acknowledged write was lost or torn"; }
		log "$tr round $r: $(tail -n 1 "$LOGDIR/check.$tr.$r.txt")"
	done
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
}
