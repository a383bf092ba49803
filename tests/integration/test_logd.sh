#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_logd: paste-logd between a client and a server namespace (tests/integration/logd_lib.sh).
#  1. a 40 MiB TCP transfer through paste-logd (logging everything) arrives byte-identical; every
#     frame was forwarded from the frame it arrived in (inplace == tx, copied_bytes == 0), and one
#     fence per logging batch;
#  2. every frame the server's interface received (tcpdump) is in the log's export, and
#     tcpdump -r reads the export with the original (increasing, recent) timestamps;
#  3. restart: the log is recovered whole (same range, frames still pinned), forwarding resumes;
#  4. selection: with --match 'udp port 9', TCP is forwarded but not logged, and the matching UDP is;
#  5. replay re-sends logged frames out of an interface (seen by tcpdump there);
#  6. selection by protocol and prefix (--match 'icmp net ...'): only the pings are logged.
. "$(dirname "$0")/logd_lib.sh"

start_logd --pool "$POOL" --pool-size 512M
want=xdp
[ "$XDP_MODE" = skb ] && want=xdpgeneric
in_mb ip link show dev "$VETH_MBC" | grep -Eq " $want( |$)" || fail "XDP program not attached in $XDP_MODE mode"
wait_ping
start_capture "$WORK/server.pcap"
transfer 40
stop_capture
stop_logd
st=$ST
log "$st"
tx=$(($(stat_field "$st" tx_in) + $(stat_field "$st" tx_out)))
[ "$tx" -gt 20000 ] || fail "too few frames forwarded ($tx) for 40 MiB"
[ "$(stat_field "$st" inplace)" = "$tx" ] || fail "not every TX frame was a received one: $st"
[ "$(stat_field "$st" copied_bytes)" = 0 ] || fail "bytes copied: $st"
[ "$(stat_field "$st" no_meta)" = 0 ] || fail "verdicts missing from the XDP metadata: $st"
[ "$(stat_field "$st" evicted)" = 0 ] || fail "records evicted with a large pool: $st"
[ "$(stat_field "$st" logged)" = "$tx" ] || fail "logged != forwarded under --log all: $st"
[ "$(stat_field "$st" fences)" -le "$tx" ] || fail "more fences than frames"

# 2. the export holds every frame the server received.
check_logged "$WORK/server.pcap" 20000
n=$(tcpdump -nn -r "$WORK/log.pcapng" 2>/dev/null | wc -l)
[ "$n" = "$tx" ] || fail "tcpdump -r read $n packets of $tx"
# Timestamps: nanosecond, from this run, non-decreasing.
tcpdump -nn -tt --time-stamp-precision=nano -r "$WORK/log.pcapng" 2>/dev/null | awk -v now="$(date +%s)" '
	{ t = $1 + 0; if (t < prev || t < now - 600 || t > now + 5) bad++; prev = t }
	END { exit bad ? 1 : 0 }' || fail "export timestamps are not this run's, in order"

# 3. restart: the log comes back whole and forwarding resumes.
info1=$("$LOGD" info --pool "$POOL")
start_logd --pool "$POOL"
grep -q "log seq 1\.\.$((tx + 1)) ($tx frames pinned" "$LOGD_LOG" || fail "restart did not recover the log: $(head -1 "$LOGD_LOG")"
wait_ping
transfer 2
stop_logd
st=$ST
info2=$("$LOGD" info --pool "$POOL")
log "before: $info1; after: $info2"
[ "$(stat_field "$info2" first_seq)" = 1 ] || fail "records lost: $info2"
[ "$(stat_field "$info2" next_seq)" -gt $((tx + 1000)) ] || fail "no records added after the restart: $info2"

# 4. selection by rule: TCP not logged, UDP port 9 logged.
next=$(stat_field "$info2" next_seq)
start_logd --pool "$POOL" --match 'udp port 9'
wait_ping
transfer 2
for i in 1 2 3 4 5; do
	in_cli bash -c "echo logd-udp-$i > /dev/udp/$SRV_IP/9" || true
done
sleep 0.5
stop_logd
st=$ST
log "$st"
[ "$(stat_field "$st" logged)" = 5 ] || fail "expected exactly the 5 UDP frames logged: $st"
[ "$(stat_field "$st" unlogged)" -gt 1000 ] || fail "TCP was not forwarded unlogged: $st"
"$LOGD" export --pool "$POOL" --from "$next" >"$WORK/sel.pcapng"
[ "$(tcpdump -nn -r "$WORK/sel.pcapng" 2>/dev/null | grep -c 'UDP, length')" = 5 ] || fail "the export of the selection is not the 5 UDP frames"

# 5. replay the 5 UDP frames out of the server-side veth: the server sees them again.
start_capture "$WORK/replay.pcap" --immediate-mode
out=$(in_mb "$LOGD" replay --pool "$POOL" --out "$VETH_MBS" --from "$next") || fail "replay failed"
stop_capture
[ "$out" = "replayed=5" ] || fail "replay said: $out"
$TOOL subset "$WORK/sel.pcapng" "$WORK/replay.pcap" >&2 || fail "replayed frames differ"

# 6. selection by protocol and prefix: ICMP of 10.77.0.0/24 is logged; a TCP rule for a host that is
# not in the transfer logs nothing of it; ARP (not IPv4) is never matched by rules.
next=$("$LOGD" info --pool "$POOL" | tr ' ' '\n' | sed -n 's/^next_seq=//p')
start_logd --pool "$POOL" --match 'icmp net 10.77.0.0/24' --match 'tcp host 10.77.0.9'
wait_ping
in_cli ping -c 3 -i 0.2 "$SRV_IP" >/dev/null || fail "ping failed"
transfer 1
stop_logd
"$LOGD" export --pool "$POOL" --from "$next" >"$WORK/icmp.pcapng"
tcpdump -nn -r "$WORK/icmp.pcapng" 2>/dev/null >"$WORK/icmp.txt"
icmp=$(grep -c 'ICMP echo' "$WORK/icmp.txt" || true)
[ "$icmp" -ge 6 ] || fail "expected the pings logged, export has $icmp ICMP echo frames"
[ "$(wc -l <"$WORK/icmp.txt")" = "$icmp" ] || fail "frames other than the pings were logged: $(grep -v 'ICMP echo' "$WORK/icmp.txt" | head -3)"
[ "$(stat_field "$ST" logged)" = "$icmp" ] || fail "logged $(stat_field "$ST" logged), exported $icmp"
exit 0
