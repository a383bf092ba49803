#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_logd_malformed: frames whose headers do not fit them (no IPv4 header, IHL 3, total length
# past the frame, TCP data offset 2, UDP header cut off) sent from the client through paste-logd
# under each --malformed policy, with one well-formed frame of an unknown EtherType:
#   drop:    all 5 counted by the XDP program and paste-logd, none reaches the server, none logged;
#   log:     all 5 logged (export has them), none reaches the server;
#   forward: all 5 reach the server and are logged.
# After each, forwarding still works (ping and a TCP transfer), and the odd frame always passes.
. "$(dirname "$0")/logd_lib.sh"

cli_mac=$(in_cli cat "/sys/class/net/$VETH_CLI/address")
srv_mac=$(in_srv cat "/sys/class/net/$VETH_SRV/address")

# phase POLICY: run one policy; sets ST (final stats) and leaves the capture in $WORK/POLICY.pcap.
phase() {
	start_logd --pool "$POOL" --pool-size 128M --ring-size 1024 --malformed "$1"
	wait_ping
	start_capture "$WORK/$1.pcap" --immediate-mode
	in_cli $TOOL malformed send "$VETH_CLI" "$srv_mac" "$cli_mac" >/dev/null || fail "sending the test frames failed"
	sleep 0.5
	wait_ping
	stop_capture
	transfer 4
	stop_logd
	log "$1: $ST"
	[ "$(stat_field "$ST" bpf_malformed)" = 5 ] || fail "$1: the XDP program did not flag 5 frames: $ST"
	[ "$(stat_field "$ST" malformed)" = 5 ] || fail "$1: paste-logd did not see 5 malformed frames: $ST"
	[ "$(stat_field "$ST" invalid)" = 0 ] || fail "$1: invalid descriptors: $ST"
}

next_seq() { "$LOGD" info --pool "$POOL" | tr ' ' '\n' | sed -n 's/^next_seq=//p'; }

phase drop
[ "$(stat_field "$ST" malformed_dropped)" = 5 ] || fail "drop: not 5 dropped: $ST"
[ "$($TOOL malformed count "$WORK/drop.pcap")" = "malformed=0 odd=1" ] ||
	fail "drop: server saw $($TOOL malformed count "$WORK/drop.pcap")"
"$LOGD" export --pool "$POOL" >"$WORK/drop.pcapng"
[ "$($TOOL malformed count "$WORK/drop.pcapng")" = "malformed=0 odd=1" ] || fail "drop: a malformed frame was logged"

from=$(next_seq)
phase log
[ "$(stat_field "$ST" malformed_logged)" = 5 ] || fail "log: not 5 logged: $ST"
[ "$($TOOL malformed count "$WORK/log.pcap")" = "malformed=0 odd=1" ] ||
	fail "log: server saw $($TOOL malformed count "$WORK/log.pcap")"
"$LOGD" export --pool "$POOL" --from "$from" >"$WORK/log.pcapng"
[ "$($TOOL malformed count "$WORK/log.pcapng")" = "malformed=5 odd=1" ] || fail "log: export has $($TOOL malformed count "$WORK/log.pcapng")"
tcpdump -r "$WORK/log.pcapng" >/dev/null 2>&1 || fail "tcpdump cannot read an export with malformed frames"

from=$(next_seq)
phase forward
[ "$($TOOL malformed count "$WORK/forward.pcap")" = "malformed=5 odd=1" ] ||
	fail "forward: server saw $($TOOL malformed count "$WORK/forward.pcap")"
"$LOGD" export --pool "$POOL" --from "$from" >"$WORK/fwd.pcapng"
[ "$($TOOL malformed count "$WORK/fwd.pcapng")" = "malformed=5 odd=1" ] || fail "forward: export has $($TOOL malformed count "$WORK/fwd.pcapng")"
exit 0
