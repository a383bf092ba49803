#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Shared-IP mode: paste-echo uses the server namespace's own kernel address and only its TCP port is
# steered to the stack. Everything else must still reach the kernel while it runs: a kernel TCP
# echo server on another port of the same address, and ping (answered by the kernel).
. "$(dirname "$0")/lib.sh"
testbed_up

PASTE_PORT=7
KERNEL_PORT=8080

# A small threaded kernel echo server, started by PID in the server namespace.
start_kernel_echo "$NS_SRV" "$SRV_IP" "$KERNEL_PORT"

start_echo --ifname "$VETH_SRV" --shared-ip --ip "$SRV_IP" --port $PASTE_PORT --pool "$POOL" \
	--pool-size 64M

# The kernel keeps everything that is not paste-echo's port.
in_cli ping -c 3 -i 0.2 -W 2 "$SRV_IP" >"$LOGDIR/ping.log" 2>&1 ||
	{ cat "$LOGDIR/ping.log" >&2; fail "ping $SRV_IP failed with paste-echo attached in shared-IP mode"; }
run_client --connect "$SRV_IP:$KERNEL_PORT" --conns 5 --bytes 64K --timeout 30 ||
	fail "kernel TCP server on port $KERNEL_PORT unreachable with paste-echo attached"

# The stack serves its port on the same address.
run_client --connect "$SRV_IP:$PASTE_PORT" --conns 20 --bytes 256K --close client --timeout 120 ||
	fail "echo over paste (shared IP) failed"
run_client --connect "$SRV_IP:$PASTE_PORT" --conns 20 --bytes 256K --close half --seed 5 --timeout 120 ||
	fail "echo over paste (shared IP, half close) failed"

# Still the kernel's, after the stack's traffic.
run_client --connect "$SRV_IP:$KERNEL_PORT" --conns 5 --bytes 64K --seed 6 --timeout 30 ||
	fail "kernel TCP server unreachable after the paste run"

line=$(wait_idle 10)
log "$line"
check_quiescent "$line"
passed=$(stat_field "$line" passed)
[ "$passed" -gt 0 ] || fail "passed=$passed: the XDP program passed nothing to the kernel"

stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
! xdp_attached || fail "an XDP program is still attached to $VETH_SRV after a clean exit"
# The kernel server is untouched by the stack leaving.
run_client --connect "$SRV_IP:$KERNEL_PORT" --conns 2 --bytes 16K --seed 7 --timeout 30 ||
	fail "kernel TCP server unreachable after paste-echo exited"
