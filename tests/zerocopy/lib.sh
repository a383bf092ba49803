# shellcheck shell=bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/zerocopy/lib.sh - shared helpers of the zero-copy tests (sourced, not run).
#
# Sourcing it boots a private scripts/vm-testbed guest (named after the shell's PID), whose
# virtio-net NIC does AF_XDP zero copy, and installs an EXIT trap that kills the host processes the
# test started (by PID) and stops the guest. The programs run in the guest (in_vm), the kernel TCP
# clients on the host side of the tap (on_host):
#
#	. "$(dirname "$0")/lib.sh"
#	vm_start echo /tmp/echo.log paste-echo --ifname eth0 --ip "$STACK_IP" --port 7 --zero-copy required
#	on_host "$PASTE_CLIENT" --connect "$STACK_IP:7" --conns 100 || fail "client failed"
#
# When the guest kernel cannot be downloaded (no network, no Debian mirror), the test exits 77
# (ctest: SKIP) with the reason. Environment: PASTE_BUILD, PASTE_SRC as for tests/integration.
set -euo pipefail
shopt -s inherit_errexit

TEST_NAME=$(basename "$0" .sh)
PASTE_SRC=$(cd "${PASTE_SRC:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
PASTE_BUILD=$(cd "${PASTE_BUILD:-./build}" 2>/dev/null && pwd) || {
	echo "FAIL $TEST_NAME: build directory '${PASTE_BUILD:-./build}' not found (set PASTE_BUILD)" >&2
	exit 1
}
export PASTE_BUILD
PASTE_CLIENT=$PASTE_BUILD/tests/paste-testclient
[ -x "$PASTE_CLIENT" ] || PASTE_CLIENT=$PASTE_BUILD/paste-testclient
VMTB=$PASTE_SRC/scripts/vm-testbed
LOGDIR=$PASTE_BUILD/Testing/zerocopy-logs/$TEST_NAME
export PASTE_VM_NAME=zc-$$
HOST_PIDS=()
T_START=$(date +%s)

log() { printf '[%s +%ss] %s\n' "$TEST_NAME" "$(($(date +%s) - T_START))" "$*" >&2; }

# fail MSG: report with the guest's view (dmesg tail, program logs) and exit 1.
fail() {
	local rc=1
	[ -f "$LOGDIR/testbed-fault" ] && rc=75
	echo "FAIL $TEST_NAME: $*" >&2
	if "$VMTB" status >/dev/null 2>&1; then
		"$VMTB" run --timeout 30 'for f in /tmp/*.log; do [ -f "$f" ] && { echo "---- guest $f"; tail -n 30 "$f"; }; done; echo "---- guest dmesg"; dmesg | tail -n 15' >&2 || true
	fi
	exit $rc
}

skip() {
	echo "SKIP $TEST_NAME: $*" >&2
	exit 77
}

cleanup() {
	local rc=$? p
	set +e
	for p in "${HOST_PIDS[@]+"${HOST_PIDS[@]}"}"; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -f "/run/paste-vm/$PASTE_VM_NAME/console.log" ]; then
		cp "/run/paste-vm/$PASTE_VM_NAME/console.log" "$LOGDIR/console.log" 2>/dev/null
	fi
	"$VMTB" down >/dev/null 2>&1
	case $rc in
	0) log "PASS" ;;
	77) ;;
	*) log "FAILED (exit $rc); logs in $LOGDIR" ;;
	esac
	exit $rc
}

# Guests of earlier runs whose test process is gone (a ctest timeout kills with SIGKILL).
remove_stale() {
	local d pid
	for d in /run/paste-vm/zc-*; do
		[ -d "$d" ] || continue
		pid=${d##*/zc-}
		[[ $pid =~ ^[0-9]+$ ]] || continue
		kill -0 "$pid" 2>/dev/null && continue
		PASTE_VM_NAME=zc-$pid "$VMTB" down >/dev/null 2>&1 || true
	done
}

[ "$(id -u)" -eq 0 ] || { echo "FAIL $TEST_NAME: must run as root" >&2; exit 1; }
for f in paste-echo paste-wal paste-kv paste-wal-dump; do
	[ -x "$PASTE_BUILD/$f" ] || { echo "FAIL $TEST_NAME: $PASTE_BUILD/$f not built" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (scripts/deps vm)"
command -v busybox >/dev/null || skip "busybox not installed (scripts/deps vm)"
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/*
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
remove_stale

rc=0
"$VMTB" fetch >"$LOGDIR/fetch.log" 2>&1 || rc=$?
[ $rc -eq 3 ] && skip "the guest kernel cannot be downloaded: $(tail -n 1 "$LOGDIR/fetch.log")"
[ $rc -eq 0 ] || { cat "$LOGDIR/fetch.log" >&2; fail "vm-testbed fetch failed ($rc)"; }
"$VMTB" up >"$LOGDIR/up.log" 2>&1 || { cat "$LOGDIR/up.log" >&2; fail "the guest did not boot"; }
log "$(grep 'up:' "$LOGDIR/up.log")"
eval "$("$VMTB" env)"
# shellcheck disable=SC2034 # used by the tests
STACK_IP=$PASTE_VM_STACK_IP

in_vm() { "$VMTB" run "$@"; }
on_host() { ip netns exec "$PASTE_VM_NS" "$@"; }

# bg_host CMD...: start CMD on the host side in the background; its PID in BG_PID.
BG_PID=
bg_host() {
	on_host "$@" &
	BG_PID=$!
	HOST_PIDS+=("$BG_PID")
}

# vm_start NAME LOG CMD...: start CMD in the guest in the background (output to LOG, its PID to
# /tmp/NAME.pid, its exit status to /tmp/NAME.rc when it ends) and wait up to 60 s for its "ready"
# line (printed).
vm_start() {
	local name=$1 glog=$2
	shift 2
	log "guest: $*"
	# The log is emptied here, before the background start: the subshell's own redirection may
	# run after the first grep below, which then found the previous run's ready line (seen once:
	# a restart's "recovered=0" read from the run before the kill).
	in_vm "rm -f /tmp/$name.pid /tmp/$name.rc; : >$glog
		( $* & echo \$! >/tmp/$name.pid; wait \$!; echo \$? >/tmp/$name.rc ) >>$glog 2>&1 &
		i=0; while [ \$i -lt 600 ]; do
			grep -m1 ': ready ' $glog 2>/dev/null && exit 0
			[ -f /tmp/$name.rc ] && { echo 'exited before ready:'; cat $glog; exit 1; }
			sleep 0.1; i=\$((i + 1))
		done; echo 'not ready in 60 s:'; cat $glog; exit 1"
}

# tcp_up PORT [TRIES]: 0 once a TCP connect from the host to STACK_IP:PORT succeeds (one try a
# second, 12 by default), 1 if none did.
tcp_up() {
	local i
	for ((i = 1; i <= ${2:-12}; i++)); do
		on_host timeout 2 bash -c "exec 3<>/dev/tcp/$STACK_IP/$1" 2>/dev/null && {
			[ $i -eq 1 ] || log "$STACK_IP:$1 answered on connect attempt $i"
			return 0
		}
		sleep 1
	done
	return 1
}

# vm_serve NAME LOG PORT CMD...: vm_start, then wait (up to 30 s) until the program answers a TCP
# connect on PORT; if it never does, print both sides' NIC counters and the program's stats. (With
# Debian 12's QEMU 7.2 about one zero-copy bind in four left the socket's TX dead: the guest
# transmitted, the tap received nothing. scripts/vm-testbed runs QEMU 10 from bookworm-backports,
# which never showed it; docs/zero-copy.md.)
vm_serve() {
	local name=$1 glog=$2 port=$3 ready
	shift 3
	ready=$(vm_start "$name" "$glog" "$@") || { echo "$ready"; return 1; }
	if tcp_up "$port" 30; then
		echo "$ready"
		return 0
	fi
	log "no TCP answer from $STACK_IP:$port in 30 s after ready; host and guest NIC counters:"
	on_host ip -s link show "$PASTE_VM_TAP" >&2 || true
	in_vm "ethtool -S eth0 | grep -v ': 0\$'; kill -USR1 \$(cat /tmp/$name.pid); sleep 1; tail -n 1 $glog | cut -c1-600" >&2 || true
	tx_lost_check "$port"
	echo "ready, but no TCP answer on port $port in 30 s: $ready"
	return 1
}

# tx_lost_check PORT: the testbed fault of docs/zero-copy.md, told apart from a library fault by its
# signature: during 3 connect attempts the guest's driver reports frames transmitted from the XDP
# socket (ethtool -S eth0: tx_xdp_tx grows) and the host's tap receives none of them. If so, write
# $LOGDIR/testbed-fault: fail() then exits 75 and tests/zerocopy/run.sh runs the test once more in a
# new guest.
tx_lost_check() {
	local tx0 rx0 tx1 rx1
	tx0=$(in_vm "ethtool -S eth0 | sed -n 's/^ *tx_xdp_tx: //p'" 2>/dev/null) || return 0
	rx0=$(on_host cat "/sys/class/net/$PASTE_VM_TAP/statistics/rx_packets") || return 0
	tcp_up "$1" 3 || true
	tx1=$(in_vm "ethtool -S eth0 | sed -n 's/^ *tx_xdp_tx: //p'" 2>/dev/null) || return 0
	rx1=$(on_host cat "/sys/class/net/$PASTE_VM_TAP/statistics/rx_packets") || return 0
	log "during 3 connect attempts: guest tx_xdp_tx +$((tx1 - tx0)), host tap rx_packets +$((rx1 - rx0))"
	if [ $((tx1 - tx0)) -gt 0 ] && [ "$rx1" = "$rx0" ]; then
		log "TESTBED FAULT: the guest's virtio-net reports $((tx1 - tx0)) frames sent from the socket and the host's tap got none (docs/zero-copy.md)"
		echo "guest tx_xdp_tx +$((tx1 - tx0)), tap rx +0" >"$LOGDIR/testbed-fault"
	fi
}

# vm_signal NAME SIG: send SIG to the guest program NAME.
vm_signal() { in_vm "kill -$2 \$(cat /tmp/$1.pid)"; }
# vm_wait NAME: wait (up to 60 s) for the guest program NAME to end; print its exit status.
vm_wait() {
	in_vm "i=0; while [ ! -f /tmp/$1.rc ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done; cat /tmp/$1.rc"
}

# field LINE KEY: the value of KEY=value in LINE.
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }
