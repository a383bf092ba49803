#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste_connect(): outgoing connections from the stack (paste-connectclient, in the server
# namespace) to a kernel TCP echo server in the client namespace, on every transport and in both
# address modes of the paste transport. Each run checks that 256 KiB come back byte-identical, that
# a port nobody listens on is refused (-ECONNREFUSED), and that an address nobody answers times
# out (-ETIMEDOUT; the kernel transports may say -EHOSTUNREACH), each with its error message; and
# that the paste transport refuses its own address and loopback (-EINVAL) instead of aborting.
. "$(dirname "$0")/lib.sh"
testbed_up

CC=$PASTE_BUILD/tests/paste-connectclient
[ -x "$CC" ] || fail "no $CC (build the paste-connectclient target)"
ECHO_PORT=9000
DEAD_PORT=9001
DEAD_IP=${CLI_IP%.*}.77 # in the subnet, nobody answers ARP for it

start_kernel_echo "$NS_CLI" "$CLI_IP" "$ECHO_PORT"

N=0
# cc WHAT EXPECT ARGS...: run paste-connectclient in the server namespace; fail unless it exits 0.
cc() {
	local what=$1 expect=$2
	shift 2
	N=$((N + 1))
	log "$what: expect $expect"
	in_srv "$CC" --port 1 --pool "$POOL" --pool-size 64M --expect "$expect" "$@" \
		>"$LOGDIR/cc.$N.log" 2>&1 || { cat "$LOGDIR/cc.$N.log" >&2; fail "$what: not $expect"; }
	grep 'connectclient:' "$LOGDIR/cc.$N.log" >&2
}

# run_mode NAME ARGS...: the three cases with the transport options ARGS.
run_mode() {
	local name=$1
	shift
	cc "$name" ok "$@" --connect "$CLI_IP:$ECHO_PORT" --bytes 256K --connect-timeout 15000
	cc "$name" refused "$@" --connect "$CLI_IP:$DEAD_PORT" --connect-timeout 15000
	grep -q "paste_connect to $CLI_IP:$DEAD_PORT: connection refused" "$LOGDIR/cc.$N.log" ||
		fail "$name: no 'connection refused' message"
	cc "$name" timeout "$@" --connect "$DEAD_IP:$ECHO_PORT" --connect-timeout 1500
	grep -qE "paste_connect to $DEAD_IP:$ECHO_PORT: (timed out|host unreachable)" "$LOGDIR/cc.$N.log" ||
		fail "$name: no 'timed out' message"
}

run_mode "paste, dedicated IP" --ifname "$VETH_SRV" --ip "$STACK_IP"
# The stack's own address and loopback: the paste transport has no loopback path (lwIP's would
# abort in Debian's build), so paste_connect refuses them at once with a message.
for self_ip in "$STACK_IP" 127.0.0.1; do
	cc "paste, to $self_ip" invalid --ifname "$VETH_SRV" --ip "$STACK_IP" --connect "$self_ip:$ECHO_PORT"
	grep -q "paste_connect to $self_ip:$ECHO_PORT: the peer is this stack's own address" "$LOGDIR/cc.$N.log" ||
		fail "paste, to $self_ip: no 'own address' message"
done
run_mode "paste, shared IP" --ifname "$VETH_SRV" --shared-ip --ip "$SRV_IP"
run_mode "kernel" --transport kernel --ip "$SRV_IP"
run_mode "io_uring" --transport io_uring --ip "$SRV_IP"
