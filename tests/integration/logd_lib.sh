# SPDX-License-Identifier: BSD-2-Clause
# tests/integration/logd_lib.sh - the three-namespace testbed of the paste-logd tests (sourced).
#
#   client ns lg-c-PID: veth lgcPID 10.77.0.1/24 (tx offload off: complete checksums)
#       |
#   middlebox ns lg-m-PID: lgmcPID (--in) ... paste-logd ... lgmsPID (--out); no addresses
#       |
#   server ns lg-s-PID: veth lgsPID 10.77.0.2/24 (tx offload off)
#
# The client and the server share a subnet: paste-logd is a bump in the wire that forwards frames
# unchanged (ARP too). Names carry the shell's PID, so parallel runs never collide; the EXIT trap
# kills only what the test started (by PID), deletes the namespaces and the test's files.
#
#	. "$(dirname "$0")/logd_lib.sh"
#	start_logd --pool "$POOL"      # waits for "paste-logd: ready"
#	in_cli ping -c1 "$SRV_IP"
#	stop_logd                      # SIGTERM, waits, checks the exit status
#
# Environment: PASTE_BUILD (build tree with paste-logd; default ./build), PASTE_READY_TIMEOUT
# (seconds, default 90), LOGD_XDP_MODE (native or skb; default native), LOGD_TEST_NAME (name for
# messages and the log directory; default the script's).
set -euo pipefail
shopt -s inherit_errexit

TEST_NAME=${LOGD_TEST_NAME:-$(basename "$0" .sh)}
PASTE_BUILD=$(cd "${PASTE_BUILD:-./build}" 2>/dev/null && pwd) || {
	echo "FAIL $TEST_NAME: build directory '${PASTE_BUILD:-./build}' not found (set PASTE_BUILD)" >&2
	exit 1
}
LOGD=$PASTE_BUILD/paste-logd
READY_TIMEOUT=${PASTE_READY_TIMEOUT:-90}
XDP_MODE=${LOGD_XDP_MODE:-native}
LOGDIR=$PASTE_BUILD/Testing/integration-logs/$TEST_NAME
POOL=/dev/shm/paste-test-$$-logd.pool
WORK=$(mktemp -d "${TMPDIR:-/tmp}/logd-test-$$.XXXXXX")
NS_CLI=lg-c-$$ NS_MB=lg-m-$$ NS_SRV=lg-s-$$
VETH_CLI=lgc$$ VETH_MBC=lgmc$$ VETH_MBS=lgms$$ VETH_SRV=lgs$$
CLI_IP=10.77.0.1 SRV_IP=10.77.0.2
STARTED_PIDS=()
LOGD_PID= LOGD_LOG= LOGD_N=0

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }

show_logd_log() {
	if [ -n "$LOGD_LOG" ] && [ -f "$LOGD_LOG" ]; then
		echo "---- $LOGD_LOG (last 20 lines) ----" >&2
		tail -n 20 "$LOGD_LOG" >&2
	fi
}

fail() {
	echo "FAIL $TEST_NAME: $*" >&2
	show_logd_log
	exit 1
}

in_cli() { ip netns exec "$NS_CLI" "$@"; }
in_mb() { ip netns exec "$NS_MB" "$@"; }
in_srv() { ip netns exec "$NS_SRV" "$@"; }

kill_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
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
	for p in "$NS_CLI" "$NS_MB" "$NS_SRV"; do
		ip netns del "$p" 2>/dev/null
	done
	rm -f -- "$POOL" "$POOL".copy
	rm -rf -- "$WORK"
	if [ $rc -eq 0 ]; then log "PASS"; else log "FAILED (exit $rc); logs in $LOGDIR"; fi
	exit $rc
}

# Namespaces and pools of earlier runs whose shell is gone.
remove_stale() {
	local ns pid f
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^lg-[cms]-[0-9]+$' || true); do
		pid=${ns##*-}
		kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
	done
	for f in /dev/shm/paste-test-*-logd.pool; do
		[ -e "$f" ] || continue
		pid=${f#/dev/shm/paste-test-}
		pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null || rm -f -- "$f"
	done
}

[ "$(id -u)" -eq 0 ] || { echo "FAIL $TEST_NAME: integration tests must run as root" >&2; exit 1; }
[ -x "$LOGD" ] || { echo "FAIL $TEST_NAME: $LOGD not built" >&2; exit 1; }
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/*.log
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
remove_stale

# ---- the testbed -------------------------------------------------------------------------------
for ns in "$NS_CLI" "$NS_MB" "$NS_SRV"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
# The middlebox kernel must not send anything itself (IPv6 autoconfiguration would): the only way
# across is paste-logd.
in_mb sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add "$VETH_CLI" netns "$NS_CLI" type veth peer name "$VETH_MBC" netns "$NS_MB"
ip link add "$VETH_SRV" netns "$NS_SRV" type veth peer name "$VETH_MBS" netns "$NS_MB"
ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_CLI"
ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"
for x in "$NS_CLI:$VETH_CLI" "$NS_MB:$VETH_MBC" "$NS_MB:$VETH_MBS" "$NS_SRV:$VETH_SRV"; do
	ip -n "${x%%:*}" link set "${x#*:}" up
done
# Endpoints: complete checksums in every frame (AF_XDP copy mode forwards bytes as they are).
in_cli ethtool -K "$VETH_CLI" tx off >/dev/null
in_srv ethtool -K "$VETH_SRV" tx off >/dev/null

# ---- paste-logd --------------------------------------------------------------------------------

# start_logd ARGS...: start paste-logd in the middlebox namespace between the two veths, wait for
# "paste-logd: ready". Its log: $LOGD_LOG.
start_logd() {
	local i
	LOGD_N=$((LOGD_N + 1))
	LOGD_LOG=$LOGDIR/paste-logd.$LOGD_N.log
	ip netns exec "$NS_MB" "$LOGD" --in "$VETH_MBC" --out "$VETH_MBS" --xdp-mode "$XDP_MODE" "$@" \
		>"$LOGD_LOG" 2>&1 &
	LOGD_PID=$!
	STARTED_PIDS+=("$LOGD_PID")
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		grep -q '^paste-logd: ready' "$LOGD_LOG" 2>/dev/null && return 0
		kill -0 "$LOGD_PID" 2>/dev/null || fail "paste-logd exited during start"
		sleep 0.1
	done
	fail "paste-logd not ready after ${READY_TIMEOUT}s"
}

# logd_stats: ask the running paste-logd for a stats line and print it.
logd_stats() {
	local before i
	before=$(grep -c '^stats ' "$LOGD_LOG" || true)
	kill -USR1 "$LOGD_PID"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c '^stats ' "$LOGD_LOG" || true)" -gt "$before" ] && break
		sleep 0.1
	done
	grep '^stats ' "$LOGD_LOG" | tail -n 1
}

# stat_field LINE NAME: the value of NAME=... in a stats line.
stat_field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# stop_logd: SIGTERM and wait; fails the test unless it exits 0. Sets ST to the final stats line
# (not in a $(...) subshell: wait needs the parent shell).
ST=
stop_logd() {
	local rc=0
	kill -TERM "$LOGD_PID"
	wait "$LOGD_PID" || rc=$?
	[ $rc -eq 0 ] || fail "paste-logd exited with $rc"
	LOGD_PID=
	ST=$(grep '^stats ' "$LOGD_LOG" | tail -n 1)
}

# kill9_logd: SIGKILL, as a crash.
kill9_logd() {
	kill -KILL "$LOGD_PID"
	wait "$LOGD_PID" 2>/dev/null || true
	LOGD_PID=
}

# wait_ping: the client reaches the server through paste-logd (ARP included).
wait_ping() {
	local i
	for ((i = 0; i < 20; i++)); do
		in_cli ping -c 1 -W 1 "$SRV_IP" >/dev/null 2>&1 && return 0
	done
	fail "no ping through paste-logd"
}

TOOL="python3 $(dirname "${BASH_SOURCE[0]}")/logd_tool.py"

# start_capture FILE [--immediate-mode]: tcpdump on the server's veth, frames it received, until
# stop_capture. Without immediate mode the last second's frames may be lost at the stop (TPACKET_V3
# blocks); with it, a fast transfer makes tcpdump drop frames: use it for a few frames only.
CAP_PID= CAP_LOG=
start_capture() {
	local i
	CAP_LOG=$1.log # one per capture: an old "listening on" must not be read as this one's
	rm -f -- "$CAP_LOG"
	ip netns exec "$NS_SRV" tcpdump -i "$VETH_SRV" -Q in -s 0 -B 65536 ${2:-} -U -w "$1" >"$CAP_LOG" 2>&1 &
	CAP_PID=$!
	STARTED_PIDS+=("$CAP_PID")
	for ((i = 0; i < 100; i++)); do
		grep -q 'listening on' "$CAP_LOG" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "tcpdump did not start: $(cat "$CAP_LOG")"
}

# stop_capture: stop tcpdump; fail if the kernel dropped frames it should have captured.
stop_capture() {
	sleep 0.5
	kill -INT "$CAP_PID"
	wait "$CAP_PID" || true
	grep -q '^0 packets dropped by kernel' "$CAP_LOG" || fail "tcpdump dropped frames: $(cat "$CAP_LOG")"
}

# transfer MB [RATE]: a TCP transfer client -> server through paste-logd; fails unless the server
# got the same bytes (count and sha256).
transfer() {
	local port=5001 got sent i
	ip netns exec "$NS_SRV" $TOOL serve $port "$WORK/recv.txt" &
	local spid=$!
	STARTED_PIDS+=("$spid")
	for ((i = 0; i < 50; i++)); do
		in_srv ss -ltn | grep -q ":$port " && break
		sleep 0.1
	done
	sent=$(in_cli timeout 120 $TOOL send "$SRV_IP" $port "$1" 7 "${2:-0}") || fail "sender failed"
	wait "$spid" || fail "receiver failed"
	got=$(cat "$WORK/recv.txt")
	[ "$sent" = "$got" ] || fail "transfer differs: sent '$sent', received '$got'"
	log "transfer of $1 MiB byte-identical ($got)"
}

# check_logged CAPTURE MIN: export the whole log and check that every frame of CAPTURE (tcpdump at
# the server) is in it - a frame forwarded but not logged fails the test - and that CAPTURE has
# more than MIN frames (else the check means little). Leaves the export in $WORK/log.pcapng.
check_logged() {
	local captured
	"$LOGD" export --pool "$POOL" >"$WORK/log.pcapng" || fail "export failed"
	$TOOL subset "$1" "$WORK/log.pcapng" >"$WORK/subset.txt" ||
		fail "frames forwarded but not logged: $(cat "$WORK/subset.txt")"
	log "$(cat "$WORK/subset.txt")"
	captured=$(sed 's/.*captured=\([0-9]*\).*/\1/' "$WORK/subset.txt")
	[ "$captured" -gt "$2" ] || fail "capture too small to mean anything: $captured"
}
