# SPDX-License-Identifier: BSD-2-Clause
# tests/integration/lib.sh - shared helpers for the integration tests (sourced, not run).
#
# Sourcing it checks the build and installs an EXIT trap that kills only the processes the test
# started (by PID), takes its testbed down (if it made one) and removes the test's pool file. It
# builds nothing: the test calls testbed_up, which makes a private testbed (namespaces and veths
# named after the shell's PID, so a leftover never collides with another run). Then the test
# drives paste-echo in the server namespace and paste-testclient in the client one:
#
#	. "$(dirname "$0")/lib.sh"
#	testbed_up
#	start_echo --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 --pool "$POOL"
#	run_client --connect "$STACK_IP:7" --conns 10 --bytes 64K || fail "client failed"
#	line=$(echo_stats); [ "$(stat_field "$line" conns_open)" = 0 ] || fail "..."
#	stop_echo || fail "paste-echo exited with $?"
#
# Any server with a "NAME: ready" line starts with start_ready NAME LOG CMD... (the one
# start-and-wait-ready helper; start_echo, kv_lib.sh's start_kv and wal_lib.sh's start_wal use it).
#
# Environment: PASTE_BUILD (build tree with paste-echo and paste-testclient; default ./build),
# PASTE_SRC (source tree; default: two levels above this file), PASTE_READY_TIMEOUT (seconds to wait
# for a server's ready line, default 90: paste-wal with a 4 GiB pool once took over 30 on a loaded
# machine), PASTE_KEEP_LOGS (set: print where the logs are).
set -euo pipefail
shopt -s inherit_errexit

TEST_NAME=$(basename "$0" .sh)
PASTE_SRC=$(cd "${PASTE_SRC:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
PASTE_BUILD=$(cd "${PASTE_BUILD:-./build}" 2>/dev/null && pwd) || {
	echo "FAIL $TEST_NAME: build directory '${PASTE_BUILD:-./build}' not found (set PASTE_BUILD)" >&2
	exit 1
}
PASTE_ECHO=$PASTE_BUILD/paste-echo
PASTE_CLIENT=$PASTE_BUILD/tests/paste-testclient # where tests/CMakeLists.txt puts it
[ -x "$PASTE_CLIENT" ] || PASTE_CLIENT=$PASTE_BUILD/paste-testclient
TESTBED=$PASTE_SRC/scripts/testbed
READY_TIMEOUT=${PASTE_READY_TIMEOUT:-90}

# Logs of this run (kept after the test for post-mortems; overwritten by the next run).
LOGDIR=$PASTE_BUILD/Testing/integration-logs/$TEST_NAME
# The test's pool file: unique per test process, removed at exit.
POOL=/dev/shm/paste-test-$$.pool

STARTED_PIDS=()
CLEANUP_FILES=("$POOL")
CLEANUP_DIRS=() # directories the test made (a tier's segment files), removed with rm -rf
ECHO_PID=
ECHO_LOG=
ECHO_N=0
CLIENT_N=0

# ---- messages ----------------------------------------------------------------------------------

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }

# Print the tail of the current paste-echo log (if any) to stderr.
show_echo_log() {
	if [ -n "$ECHO_LOG" ] && [ -f "$ECHO_LOG" ]; then
		echo "---- $ECHO_LOG (last 40 lines) ----" >&2
		tail -n 40 "$ECHO_LOG" >&2
		echo "----" >&2
	fi
}

# try_stats: if paste-echo still runs, ask for one more stats line (for post-mortems; never fails).
try_stats() {
	local before i
	[ -n "$ECHO_PID" ] && [ -f "$ECHO_LOG" ] && kill -0 "$ECHO_PID" 2>/dev/null || return 0
	before=$(grep -c '^stats ' "$ECHO_LOG" 2>/dev/null || true)
	kill -USR1 "$ECHO_PID" 2>/dev/null || return 0
	for ((i = 0; i < 20; i++)); do
		sleep 0.1
		[ "$(grep -c '^stats ' "$ECHO_LOG" 2>/dev/null || true)" -gt "$before" ] && return 0
	done
	return 0
}

# fail MSG: report (with paste-echo's log and current counters) and exit 1; the EXIT trap cleans up.
fail() {
	echo "FAIL $TEST_NAME: $*" >&2
	try_stats
	show_echo_log
	exit 1
}

# ---- cleanup -----------------------------------------------------------------------------------

# Every PID a test starts is also written to $PIDFILE with its start time, so that a later run can
# kill what a test killed by SIGKILL (a ctest timeout) left running - and nothing else.
PIDDIR=${TMPDIR:-/tmp}/paste-tests
PIDFILE=$PIDDIR/$$.pids

# proc_start PID: the process's start time (clock ticks since boot), empty if it is gone.
proc_start() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

track_pid() {
	STARTED_PIDS+=("$1")
	echo "$1 $(proc_start "$1")" >>"$PIDFILE"
}

untrack_pid() {
	local p keep=()
	for p in "${STARTED_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	STARTED_PIDS=("${keep[@]+"${keep[@]}"}")
}

# kill_pid PID: SIGTERM, then SIGKILL after 5 s. Only for PIDs this test started.
kill_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.025
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? p
	set +e
	for p in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do
		kill_pid "$p"
	done
	# only a testbed this test made: without its names, "down" would mean the default one
	[ -z "${TESTBED_UP:-}" ] || "$TESTBED" down >/dev/null 2>&1
	for p in "${CLEANUP_FILES[@]}"; do
		rm -f -- "$p"
	done
	for p in "${CLEANUP_DIRS[@]+"${CLEANUP_DIRS[@]}"}"; do
		rm -rf -- "$p"
	done
	rm -f -- "$PIDFILE"
	if [ $rc -eq 0 ]; then
		log "PASS"
	else
		log "FAILED (exit $rc); logs in $LOGDIR"
	fi
	exit $rc
}

# Namespaces and pool files of earlier runs whose test process is gone (killed by a ctest timeout,
# say). Only names this file makes are touched.
remove_stale() {
	local ns pid f start
	for f in "$PIDDIR"/*.pids; do
		[ -e "$f" ] || continue
		pid=$(basename "$f" .pids)
		kill -0 "$pid" 2>/dev/null && continue
		while read -r pid start; do
			if [ -n "$start" ] && [ "$(proc_start "$pid")" = "$start" ]; then
				log "killing pid $pid left running by an earlier test"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done <"$f"
		rm -f -- "$f"
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^pt-(cli|srv)-[0-9]+$' || true); do
		pid=${ns##*-}
		kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
	done
	for f in /dev/shm/paste-test-*.pool; do
		[ -e "$f" ] || continue
		pid=${f#/dev/shm/paste-test-} # paste-test-PID.pool or paste-test-PID-anything.pool
		pid=${pid%%[!0-9]*}
		[ -n "$pid" ] || continue
		kill -0 "$pid" 2>/dev/null || rm -f -- "$f"
	done
}

# ---- checks before anything is made ------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || { echo "FAIL $TEST_NAME: integration tests must run as root" >&2; exit 1; }
for f in "$PASTE_ECHO" "$PASTE_CLIENT"; do
	[ -x "$f" ] || { echo "FAIL $TEST_NAME: $f not built" >&2; exit 1; }
done
[ -x "$TESTBED" ] || { echo "FAIL $TEST_NAME: $TESTBED missing" >&2; exit 1; }

mkdir -p "$LOGDIR" "$PIDDIR"
rm -f "$LOGDIR"/*.log
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
remove_stale

# ---- the testbed -------------------------------------------------------------------------------

TESTBED_UP=

# testbed_up: make this test's testbed (scripts/testbed up with names of this PID: two network
# namespaces joined by a veth pair; see scripts/testbed --help) and set NS_CLI, NS_SRV, VETH_CLI,
# VETH_SRV, CLI_IP, SRV_IP and STACK_IP. The EXIT trap takes it down.
testbed_up() {
	[ -z "$TESTBED_UP" ] || return 0
	export PASTE_NS_CLI=pt-cli-$$ PASTE_NS_SRV=pt-srv-$$
	export PASTE_VETH_CLI=ptc$$ PASTE_VETH_SRV=pts$$ # at most 10 characters: IFNAMSIZ is 16
	TESTBED_UP=1
	"$TESTBED" up >"$LOGDIR/testbed.log" 2>&1 || { cat "$LOGDIR/testbed.log" >&2; fail "testbed up failed"; }
	eval "$("$TESTBED" env)"
	NS_CLI=$PASTE_NS_CLI
	NS_SRV=$PASTE_NS_SRV
	# shellcheck disable=SC2034
	{
		VETH_CLI=$PASTE_VETH_CLI
		VETH_SRV=$PASTE_VETH_SRV
		CLI_IP=$PASTE_CLI_IP
		SRV_IP=$PASTE_SRV_IP
		STACK_IP=$PASTE_STACK_IP
	}
}

# need_testbed: fail with a clear message when a test uses the namespaces before testbed_up.
need_testbed() { [ -n "$TESTBED_UP" ] || fail "no testbed: call testbed_up after sourcing lib.sh"; }

in_cli() { need_testbed; ip netns exec "$NS_CLI" "$@"; }
in_srv() { need_testbed; ip netns exec "$NS_SRV" "$@"; }

# xdp_attached: true if an XDP program is attached to the server veth.
xdp_attached() { grep -qE 'xdp|prog/' <<<"$(in_srv ip -d link show dev "$VETH_SRV")"; }

# ---- paste-echo --------------------------------------------------------------------------------

# start_echo ARGS...: run paste-echo ARGS in the server namespace (background, output to
# $ECHO_LOG) and wait until it prints "paste-echo: ready". Sets ECHO_PID.
start_echo() {
	ECHO_N=$((ECHO_N + 1))
	ECHO_LOG=$LOGDIR/echo.$ECHO_N.log
	log "start: paste-echo $*"
	need_testbed
	start_ready paste-echo "$ECHO_LOG" ip netns exec "$NS_SRV" "$PASTE_ECHO" "$@"
	ECHO_PID=$READY_PID
}

# start_ready NAME LOG CMD...: run CMD in the background (output to LOG), track its PID, and wait
# up to PASTE_READY_TIMEOUT seconds for a line starting "NAME: ready" in LOG. Sets READY_PID and
# READY (that line). If CMD exits first, or never gets ready: the end of LOG, then fail.
READY=
READY_PID=
start_ready() {
	local name=$1 logf=$2 i rc=0
	shift 2
	: >"$logf" # empty before the wait below reads it: not a ready line of an earlier run's log
	"$@" >"$logf" 2>&1 &
	READY_PID=$!
	track_pid "$READY_PID"
	for ((i = 0; i < READY_TIMEOUT * 40; i++)); do # every 25 ms: a test starts servers many times
		READY=$(grep -m1 "^$name: ready" "$logf" || true)
		if [ -n "$READY" ]; then
			log "$READY"
			return 0
		fi
		if ! kill -0 "$READY_PID" 2>/dev/null; then
			wait "$READY_PID" || rc=$?
			untrack_pid "$READY_PID"
			tail -n 5 "$logf" >&2
			fail "$name exited with status $rc before it was ready"
		fi
		sleep 0.025
	done
	tail -n 5 "$logf" >&2
	fail "$name not ready after ${READY_TIMEOUT}s"
}

# echo_stats: make paste-echo print a stats line (SIGUSR1) and print it.
echo_stats() {
	local before i
	before=$(grep -c '^stats ' "$ECHO_LOG" || true)
	for ((i = 0; i < 400; i++)); do
		# Ask again every 2 s, in case a signal landed while the loop was not listening.
		if ((i % 80 == 0)); then
			kill -USR1 "$ECHO_PID" 2>/dev/null || fail "paste-echo (pid $ECHO_PID) is gone"
		fi
		sleep 0.025
		if [ "$(grep -c '^stats ' "$ECHO_LOG" || true)" -gt "$before" ]; then
			grep '^stats ' "$ECHO_LOG" | tail -n 1
			return 0
		fi
	done
	fail "no stats line from paste-echo within 10 s of SIGUSR1"
}

# stat_field LINE NAME: the value of NAME=value in a stats line (fails if absent).
stat_field() {
	local v
	v=$(printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1)
	[ -n "$v" ] || fail "stats line has no field '$2': $1"
	printf '%s\n' "$v"
}

# stop_echo: SIGTERM the server in ECHO_PID (paste-echo, or whichever server a test put there),
# wait (at most 30 s, then SIGKILL) and return its exit status (also left in ECHO_RC).
stop_echo() {
	local i name
	ECHO_RC=0
	name=$(cat "/proc/$ECHO_PID/comm" 2>/dev/null || echo paste-echo)
	kill -TERM "$ECHO_PID" 2>/dev/null || true
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$ECHO_PID" 2>/dev/null || break
		sleep 0.025
	done
	if kill -0 "$ECHO_PID" 2>/dev/null; then
		log "$name did not exit within 30 s of SIGTERM: SIGKILL"
		kill -KILL "$ECHO_PID" 2>/dev/null || true
	fi
	wait "$ECHO_PID" || ECHO_RC=$?
	untrack_pid "$ECHO_PID"
	log "$name exited with status $ECHO_RC"
	return "$ECHO_RC"
}

# ---- parts of a test at the same time -----------------------------------------------------------

# in_parallel FUNC ITEM...: "FUNC ITEM N" for every ITEM (N = 0, 1, ...: the caller derives its
# ports, pool files and log numbers from it), all at the same time, each in a subshell. A failure in
# one (fail, or a command failing) ends only that subshell, whose EXIT trap stops the processes it
# started; once all have ended, in_parallel fails if any did. Files FUNC makes for the EXIT trap of
# the test to remove go into CLEANUP_FILES before the call (a subshell's additions are lost).
in_parallel() {
	local fn=$1 item n=0 s rc subs=() failed=()
	shift
	for item in "$@"; do
		(
			STARTED_PIDS=()
			trap 'set +e; for p in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do kill_pid "$p"; done' EXIT
			trap 'exit 143' TERM
			"$fn" "$item" "$n"
		) &
		subs+=("$item:$!")
		track_pid $!
		n=$((n + 1))
	done
	for s in "${subs[@]}"; do
		rc=0
		wait "${s##*:}" || rc=$?
		untrack_pid "${s##*:}"
		[ $rc = 0 ] || failed+=("${s%:*} (status $rc)")
	done
	[ ${#failed[@]} = 0 ] || fail "failed: ${failed[*]} (run at the same time; see the FAIL lines above)"
}

# ---- a kernel TCP echo server -------------------------------------------------------------------

# start_kernel_echo NS IP PORT: a threaded kernel TCP echo server (python3) on IP:PORT in network
# namespace NS, in the background; waits until it listens. Started with ip netns exec itself (not
# in_cli/in_srv, which would fork a shell) so that KECHO_PID is the server's own PID.
start_kernel_echo() {
	local i log=$LOGDIR/kernel-echo.$3.log
	ip netns exec "$1" python3 -c '
import socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                d = self.request.recv(65536)
                if not d:
                    return
                self.request.sendall(d)
            except OSError:
                return
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
s = S((sys.argv[1], int(sys.argv[2])), H)
print("kernel-echo: ready", flush=True)
s.serve_forever()
' "$2" "$3" >"$log" 2>&1 &
	KECHO_PID=$!
	track_pid "$KECHO_PID"
	for ((i = 0; i < 100; i++)); do
		grep -q 'kernel-echo: ready' "$log" && return 0
		kill -0 "$KECHO_PID" 2>/dev/null || { cat "$log" >&2; fail "kernel echo server died"; }
		sleep 0.1
	done
	fail "kernel echo server on $2:$3 not ready"
}

# ---- the client --------------------------------------------------------------------------------

# run_client ARGS...: paste-testclient ARGS in the client namespace, in the foreground. Its output
# is shown and kept in $CLIENT_LOG; returns its exit status.
run_client() {
	CLIENT_N=$((CLIENT_N + 1))
	CLIENT_LOG=$LOGDIR/client.$CLIENT_N.log
	log "client: $*"
	ip netns exec "$NS_CLI" "$PASTE_CLIENT" "$@" 2>&1 | tee "$CLIENT_LOG" >&2
}

# ---- assertions on paste-echo's counters -------------------------------------------------------

# wait_idle [SECONDS]: wait until paste-echo reports no open connection and no frame held by the
# stack or the TX ring; prints the last stats line. Fails on timeout.
wait_idle() {
	local secs=${1:-10} line t0=$SECONDS
	while :; do
		line=$(echo_stats)
		if [ "$(stat_field "$line" conns_open)" = 0 ] && [ "$(stat_field "$line" frames_rx)" = 0 ] &&
			[ "$(stat_field "$line" frames_tx)" = 0 ]; then
			break
		fi
		((SECONDS - t0 < secs)) || break
		sleep 0.5
	done
	printf '%s\n' "$line"
}

# check_quiescent LINE [XDP_MODE]: after all clients are done, every frame is back in the
# allocator or on the fill ring, nothing was copied on receive, and the program runs in XDP_MODE.
check_quiescent() {
	local line=$1 mode=${2:-} f
	local -A v
	for f in conns_open frames_total frames_free frames_fill frames_rx frames_tx frames_kept \
		rx_payload_bytes rx_copied_bytes xdp_mode zerocopy; do
		v[$f]=$(stat_field "$line" $f)
	done
	[ "${v[conns_open]}" = 0 ] || fail "conns_open=${v[conns_open]} after every client finished"
	[ "${v[frames_rx]}" = 0 ] || fail "frames_rx=${v[frames_rx]}: received frames still held"
	[ "${v[frames_tx]}" = 0 ] || fail "frames_tx=${v[frames_tx]}: TX frames not completed"
	[ "${v[frames_kept]}" = 0 ] || fail "frames_kept=${v[frames_kept]}: the echo keeps nothing"
	[ $((v[frames_free] + v[frames_fill])) -eq "${v[frames_total]}" ] ||
		fail "frames_free+frames_fill=$((v[frames_free] + v[frames_fill])) != frames_total=${v[frames_total]}"
	[ "${v[rx_copied_bytes]}" = 0 ] || fail "rx_copied_bytes=${v[rx_copied_bytes]}: receive path copied"
	[ "${v[rx_payload_bytes]}" -gt 0 ] || fail "rx_payload_bytes=0: nothing received"
	if [ -n "$mode" ] && [ "${v[xdp_mode]}" != "$mode" ]; then
		fail "xdp_mode=${v[xdp_mode]}, expected $mode"
	fi
	log "quiescent: frames ${v[frames_free]} free + ${v[frames_fill]} fill = ${v[frames_total]}," \
		"payload ${v[rx_payload_bytes]} B, copied 0, xdp_mode ${v[xdp_mode]}, zerocopy ${v[zerocopy]}"
}
