# SPDX-License-Identifier: BSD-2-Clause
# mq_lib.sh - what the --queues tests share (sourced after lib.sh): a daemon's supervisor in the
# server namespace, started and stopped. Sourced after testbed_up: it widens the client
# namespace's ephemeral port range.

# getall opens a connection per 10 records: ~30,000 connections over test_multiqueue_wal, every one
# left in TIME_WAIT on the client for 60 s, more than the default ephemeral range (28,232 ports)
# holds; the clean-root run once ended in EADDRNOTAVAIL.
ip netns exec "$NS_CLI" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"

# sup_start BIN NAME ARGS...: BIN ARGS in the server namespace (a --queues run), waiting for
# NAME's "supervisor ready" line. Sets SUP_PID, SUP_LOG and the first two workers' pids W0, W1;
# fail() shows SUP_LOG (through lib.sh's ECHO_PID/ECHO_LOG).
sup_start() {
	local bin=$1 name=$2 i rc=0 line
	shift 2
	SUP_N=$((${SUP_N:-0} + 1))
	SUP_LOG=$LOGDIR/sup.$SUP_N.log
	log "start: $name $*"
	: >"$SUP_LOG" # empty before the wait below reads it: not a ready line of an earlier run's log
	ip netns exec "$NS_SRV" "$bin" "$@" >"$SUP_LOG" 2>&1 &
	SUP_PID=$!
	track_pid "$SUP_PID"
	ECHO_PID=$SUP_PID
	ECHO_LOG=$SUP_LOG
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		line=$(grep -m1 'supervisor ready' "$SUP_LOG" || true)
		if [ -n "$line" ]; then
			log "$line"
			W0=$(printf '%s\n' "$line" | sed 's/.*pids=\([0-9]*\),.*/\1/')
			W1=$(printf '%s\n' "$line" | sed 's/.*pids=[0-9]*,\([0-9]*\).*/\1/')
			return 0
		fi
		if ! kill -0 "$SUP_PID" 2>/dev/null; then
			wait "$SUP_PID" || rc=$?
			untrack_pid "$SUP_PID"
			fail "$name exited with status $rc before it was ready"
		fi
		sleep 0.1
	done
	fail "$name not ready after ${READY_TIMEOUT}s"
}

# stop_sup: SIGTERM to the supervisor; fails unless it exits 0 within 40 s, every worker stopped.
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
	[ "$rc" = 0 ] || fail "the supervisor exited with status $rc"
	grep -q 'supervisor: every worker stopped' "$SUP_LOG" || fail "no 'every worker stopped' line"
}
