# SPDX-License-Identifier: BSD-2-Clause
# tests/integration/echo_suite.sh - the dedicated-IP echo suite, run once per XDP mode by
# test_echo_native.sh and test_echo_skb.sh (sourced after lib.sh).
#
# paste-echo owns the testbed's stack address (an address the server kernel does not have). 100
# concurrent kernel-TCP clients push 1 MiB each through it, ending every way a connection can end
# (client close, half close, server close after --max-bytes, RST, then all four mixed). Afterwards
# the counters must show a quiet stack: no connection open, every frame back in the allocator or on
# the fill ring, nothing copied on receive, and the XDP program in the requested mode. lwIP must
# answer ping for its address, and SIGTERM must end the server with status 0.

# echo_suite MODE: MODE is native or skb.
echo_suite() {
	local mode=$1 port=7 line
	local common=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port "$port" --pool "$POOL"
		--pool-size 64M --xdp-mode "$mode")
	local to=(--timeout 120)

	start_echo "${common[@]}"
	run_client --connect "$STACK_IP:$port" --conns 100 --bytes 1M --close client --seed 1 "${to[@]}" ||
		fail "--close client: client failed"
	run_client --connect "$STACK_IP:$port" --conns 100 --bytes 1M --close half --seed 2 "${to[@]}" ||
		fail "--close half: client failed"
	line=$(wait_idle 10)
	log "$line"
	check_quiescent "$line" "$mode"
	stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"

	# Same pool, reopened; the server now closes each connection after 256 KiB.
	start_echo "${common[@]}" --max-bytes 262144
	run_client --connect "$STACK_IP:$port" --conns 100 --bytes 256K --close server --seed 3 "${to[@]}" ||
		fail "--close server: client failed"
	run_client --connect "$STACK_IP:$port" --conns 100 --bytes 256K --mix --seed 4 "${to[@]}" ||
		fail "--mix: client failed"
	grep -q ' reset=25 ' "$CLIENT_LOG" || fail "--mix: expected 25 reset connections"
	line=$(wait_idle 10)
	log "$line"
	check_quiescent "$line" "$mode"

	# lwIP answers ARP and ICMP echo for its own address.
	in_cli ping -c 3 -i 0.2 -W 2 "$STACK_IP" >"$LOGDIR/ping.log" 2>&1 ||
		{ cat "$LOGDIR/ping.log" >&2; fail "ping $STACK_IP (the stack's address) failed"; }
	log "ping $STACK_IP: $(grep -E 'packets transmitted' "$LOGDIR/ping.log")"

	stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
	! xdp_attached || fail "an XDP program is still attached to $VETH_SRV after a clean exit"
}
