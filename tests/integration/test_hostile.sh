#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Hostile traffic against paste-wal on the paste transport (dedicated IP). hostile_gen.py, in the
# client namespace, writes raw Ethernet frames on the client veth: malformed headers of every kind,
# bad checksums, invalid flag combinations, fragments, oversized frames (hostile_gen.py malformed),
# duplicate / overlapping / out-of-order / out-of-window segments, stray RST/SYN, zero windows and
# garbage at rcv_nxt on real established connections (conn: each such POST must be answered 201 and
# read back byte for byte), and a SYN flood of PASTE_HOSTILE_SYNS (default 100000) SYNs from
# spoofed addresses and ports of the test subnet at PASTE_HOSTILE_RATE (default 10000) per second.
# Before, during and after, wal_client.py load runs with an ack file. Afterwards:
#  - the same paste-wal process still runs and serves a new client (curl POST + GET);
#  - every acknowledged record is intact (wal_client.py verify --strict over HTTP, and
#    paste-wal-dump --verify --raw of the pool after a clean SIGTERM, which must exit 0);
#  - the load client lost no connection during the attack (no reset, stall or error reply);
#  - a new client is served in the middle of the SYN flood (GET /stats within 5 s), and the
#    flood's half-open connections were evicted (syn_evicted > 0: paste_opts.syn_backlog, 1024);
#  - the stack holds no frame and no connection once the attack's state has timed out
#    (frames_rx=0, conns_open=0, frames_free+frames_fill+frames_kept=frames_total);
#  - the SYN flood's effect is printed: SYN-ACKs and ARP requests the stack sent, VmRSS before,
#    at the end of the flood, and after the SYN_RCVD state timed out.
# Then paste-echo runs on the same testbed with --max-conns 8 and gets the malformed burst and a
# short flood once more, because it prints the library counters paste-wal's /stats leaves out
# (rx_invalid, steered, passed, conns_refused): steered must account for the burst, and the 12
# kernel connections held open at once must see conns_refused >= 4.
#
# Environment: PASTE_HOSTILE_SYNS, PASTE_HOSTILE_RATE, PASTE_HOSTILE_COUNT (frames per malformed
# kind, default 200), PASTE_HOSTILE_SEED, plus lib.sh's.
. "$(dirname "$0")/lib.sh"
testbed_up
SEED=${PASTE_HOSTILE_SEED:-$((RANDOM * 32768 + RANDOM))}
. "$(dirname "$0")/wal_lib.sh"

SYNS=${PASTE_HOSTILE_SYNS:-100000}
RATE=${PASTE_HOSTILE_RATE:-10000}
COUNT=${PASTE_HOSTILE_COUNT:-200}
GEN=$HERE/hostile_gen.py
command -v curl >/dev/null || fail "curl not installed"
log "seed $SEED (PASTE_HOSTILE_SEED=$SEED reproduces the traffic), $SYNS SYNs at $RATE/s"
rm -f "$ACKS"

# jfield JSON NAME: a number from paste-wal's /stats.
jfield() {
	local v
	v=$(printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p")
	[ -n "$v" ] || fail "no field '$2' in /stats: $1"
	printf '%s\n' "$v"
}
# wal_stats [SECS]: GET /stats within SECS (10).
wal_stats() { in_cli curl -sS --max-time "${1:-10}" "http://$STACK_IP:$PORT/stats" || fail "GET /stats failed"; }
# rss_kb PID: "VmRSS/RssAnon" in kB (VmRSS includes the mapped pool; RssAnon is the heap).
rss_kb() { awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} END{print r "/" a}' "/proc/$1/status"; }
alive() { kill -0 "$WAL_PID" 2>/dev/null || fail "paste-wal (pid $WAL_PID) died"; }
gen() { in_cli python3 "$GEN" "$@" --iface "$VETH_CLI" --dst-mac "$STACK_MAC" --dst-ip "$STACK_IP" \
	--src-ip "$CLI_IP" --spoof-net "${STACK_IP%.*}" --seed "$SEED"; }

# load TAG SECONDS CONN_BASE CONNS DEPTH [ARGS]: wal_client.py load, summary line on stdout.
# Every record is kept in the 4 GiB pool (1,835,006 frames, ~2.5 per record at these sizes), so
# the loads are bounded by count, not by time alone: here the three took ~485,000 records (67 % of
# the frames), and a faster machine would fill the pool (507) with time bounds.
load() {
	local out=$LOGDIR/load.$1.log
	in_cli python3 "$CLIENT_PY" load --host "$STACK_IP" --port $PORT --conns "$4" --depth "$5" \
		--duration "$2" --stall 10 --grace 10 --max-size 65536 --seed "$SEED" \
		--conn-base "$3" --ack-file "$ACKS" "${@:6}" >"$out" 2>&1 || { cat "$out" >&2; fail "load $1 failed"; }
	grep '^wal_client: load' "$out"
}
check_load() {
	local sum=$2
	[ -n "$sum" ] || fail "load $1: no summary"
	[ "$(field "$sum" errors)" = 0 ] && [ "$(field "$sum" reset)" = 0 ] && [ "$(field "$sum" stall)" = 0 ] &&
		[ "$(field "$sum" eof)" = 0 ] || fail "load $1 was disturbed: $sum"
	[ "$(field "$sum" acked)" -gt 0 ] || fail "load $1: nothing acknowledged"
	log "load $1: $sum"
}

# ---- paste-wal -----------------------------------------------------------------------------------
start_wal --ifname "$VETH_SRV" --ip "$STACK_IP" --port $PORT --pool "$POOL" --pool-size 4G
in_cli ping -c1 -W2 "$STACK_IP" >/dev/null || fail "the stack does not answer ping"
STACK_MAC=$(in_cli ip neigh show "$STACK_IP" dev "$VETH_CLI" | awk '{for(i=1;i<NF;i++) if($i=="lladdr") print $(i+1)}')
[ -n "$STACK_MAC" ] || fail "no ARP entry for $STACK_IP"
log "stack $STACK_IP is at $STACK_MAC, paste-wal pid $WAL_PID"

check_load before "$(load before 2 0 6 4 --max-requests 12500)"
S0=$(wal_stats)
RSS0=$(rss_kb "$WAL_PID")

# ---- the attack, under load ----------------------------------------------------------------------
DUR=$((SYNS / RATE + 25))
# The load runs until the attack is over (the stop file), 120,000 POSTs per connection at most.
STOP=$LOGDIR/attack.over
rm -f "$STOP"
load during "$DUR" 100 3 1 --max-requests 120000 --stop-file "$STOP" >"$LOGDIR/during.sum" &
LPID=$!
track_pid $LPID
sleep 1
T0=$SECONDS
M=$(gen malformed --count "$COUNT") || fail "hostile_gen malformed failed"
log "$M"
alive
C=$(gen conn --conns 20 --conn-base 90000 2>"$LOGDIR/conn.err") || { cat "$LOGDIR/conn.err" >&2; fail "attacks on established connections: $C"; }
log "$C"
alive
gen synflood --count "$SYNS" --rate "$RATE" --linger 2 >"$LOGDIR/synflood.out" &
FPID=$!
track_pid $FPID
# A new client in the middle of the flood: before the half-open limit (src/netif.c syn_admit) lwIP
# held every flood SYN as a SYN_RCVD pcb on its linear pcb list, and the stack fell behind.
sleep "$(((SYNS / RATE + 1) / 2))"
t=$SECONDS
S_MID=$(wal_stats 5)
log "new client during the flood: GET /stats answered in $((SECONDS - t)) s, syn_evicted=$(jfield "$S_MID" syn_evicted) so far"
rc=0
wait $FPID || rc=$?
untrack_pid $FPID
[ $rc -eq 0 ] || fail "hostile_gen synflood failed"
F=$(cat "$LOGDIR/synflood.out")
FLOOD_END=$SECONDS
log "$F"
alive
RSS1=$(rss_kb "$WAL_PID")
S1=$(wal_stats)
[ "$SYNS" -le 2048 ] || [ "$(jfield "$S1" syn_evicted)" -gt 0 ] ||
	fail "syn_evicted=0 after $SYNS SYNs: the half-open limit (1024) never acted"
log "right after the flood: conns_open=$(jfield "$S1" conns_open) frames_rx=$(jfield "$S1" frames_rx)" \
	"frames_free=$(jfield "$S1" frames_free) VmRSS/RssAnon ${RSS0} -> ${RSS1} kB"
# A second malformed burst while the flood's SYN_RCVD state is still held.
M2=$(gen malformed --count "$COUNT") || fail "hostile_gen malformed (2) failed"
log "attack took $((SECONDS - T0)) s; load still running"
touch "$STOP"
rc=0
wait $LPID || rc=$?
untrack_pid $LPID
[ $rc -eq 0 ] || fail "load during the attack failed"
# No load connection may stall during the attack (the client gives up after 10 s without a
# reply). Before the half-open limit, 2 or 3 of the 3 did in 3 of 4 runs: lwIP held all 100,000
# flood SYNs as SYN_RCVD pcbs, walked them on every new SYN and timer tick, and the RX ring
# overflowed (rx_dropped 68,110 in one run).
check_load during "$(cat "$LOGDIR/during.sum")"
alive

# ---- afterwards -----------------------------------------------------------------------------------
# Every record so far (seq < NEXT) is read back over HTTP meanwhile, in the background, and the ones
# after it at the end (wal_client.py verify --upto / --from: together the check of one verify of the
# whole log, which took ~7 s after the wait below).
NEXT=$(jfield "$(wal_stats)" next_seq)
ip netns exec "$NS_CLI" python3 "$CLIENT_PY" verify --host "$STACK_IP" --port $PORT --ack-file "$ACKS" \
	--seed "$SEED" --strict --upto "$NEXT" >"$LOGDIR/verify.1.log" 2>&1 &
VPID=$!
track_pid $VPID
# The flood's SYN_RCVD pcbs keep retransmitting SYN-ACKs (and ARPing for the spoofed sources) until
# lwIP's TCP_SYN_RCVD_TIMEOUT (20 s) drops them: wait that long after the flood before judging service.
w=$((FLOOD_END + 22 - SECONDS))
((w <= 0)) || { log "waiting ${w} s for the flood's SYN_RCVD state to time out"; sleep "$w"; }
check_load after "$(load after 2 200 6 4 --max-requests 12500)"
body=$LOGDIR/curl.body
# A payload in wal_client.py's format, so that verify --strict accepts the record.
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from wal_client import payload
sys.stdout.buffer.write(payload(int(sys.argv[2]), 99999, 0, 3000))' "$HERE" "$SEED" >"$body"
r=$(in_cli curl -sS --max-time 10 --data-binary @"$body" "http://$STACK_IP:$PORT/log") || fail "curl POST failed"
seq=$(printf '%s' "$r" | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')
[ -n "$seq" ] || fail "curl POST answered: $r"
in_cli curl -sS --max-time 10 "http://$STACK_IP:$PORT/log/$seq" -o "$LOGDIR/curl.back" || fail "curl GET failed"
cmp -s "$body" "$LOGDIR/curl.back" || fail "curl GET /log/$seq returned other bytes"
log "new client served: POST -> seq $seq, GET returned the same 3000 bytes"
rc=0
wait $VPID || rc=$?
untrack_pid $VPID
[ $rc = 0 ] || { cat "$LOGDIR/verify.1.log" >&2; fail "acknowledged records below seq $NEXT lost or changed"; }
log "records below seq $NEXT: $(tail -n 1 "$LOGDIR/verify.1.log")"

# Wait for the SYN_RCVD pcbs, reassembly queues and out-of-order data to time out.
for ((i = 0; i < 60; i++)); do
	S2=$(wal_stats)
	[ "$(jfield "$S2" conns_open)" -le 1 ] && [ "$(jfield "$S2" frames_rx)" = 0 ] && break # 1: the /stats request
	sleep 1
done
RSS2=$(rss_kb "$WAL_PID")
log "after ${i} s idle: conns_open=$(jfield "$S2" conns_open) frames_rx=$(jfield "$S2" frames_rx)" \
	"frames_tx=$(jfield "$S2" frames_tx) conns_accepted $(jfield "$S0" conns_accepted) -> $(jfield "$S2" conns_accepted)"
[ "$(jfield "$S2" conns_open)" -le 1 ] || fail "conns_open=$(jfield "$S2" conns_open) long after every client finished"
[ "$(jfield "$S2" frames_rx)" = 0 ] || fail "frames_rx=$(jfield "$S2" frames_rx): the hostile traffic left frames held"
tot=$(jfield "$S2" frames_total)
sum=$(($(jfield "$S2" frames_free) + $(jfield "$S2" frames_fill) + $(jfield "$S2" frames_kept) + $(jfield "$S2" frames_tx)))
[ "$sum" = "$tot" ] || fail "frames: free+fill+kept+tx=$sum != total=$tot"
[ $(($(jfield "$S2" conns_accepted) - $(jfield "$S0" conns_accepted))) -ge 33 ] ||
	fail "conns_accepted grew by less than the 33 real connections"
[ "$(jfield "$S2" malformed)" = 0 ] || fail "malformed=$(jfield "$S2" malformed): garbage reached the HTTP parser"
log "SYN flood: $(field "$F" syns) SYNs in $(field "$F" secs) s; stack answered $(field "$F" synacks_seen) SYN-ACKs," \
	"$(field "$F" arp_requests_seen) ARP requests; VmRSS/RssAnon ${RSS0} kB before, ${RSS1} kB after the flood, ${RSS2} kB after ${i} s idle"
echo "hostile: syns=$(field "$F" syns) flood_secs=$(field "$F" secs) synacks=$(field "$F" synacks_seen)" \
	"arps=$(field "$F" arp_requests_seen) rss_anon_before_kb=${RSS0#*/} rss_anon_flood_kb=${RSS1#*/} rss_anon_idle_kb=${RSS2#*/}" \
	"malformed_frames=$(($(field "$M" sent) + $(field "$M2" sent))) conn_attacks=$(field "$C" ok)" \
	"acks=$(wc -l <"$ACKS")" >&2

in_cli python3 "$CLIENT_PY" verify --host "$STACK_IP" --port $PORT --ack-file "$ACKS" --seed "$SEED" \
	--strict --from "$NEXT" >"$LOGDIR/verify.log" 2>&1 || { cat "$LOGDIR/verify.log" >&2; fail "acknowledged records lost or changed"; }
log "records from seq $NEXT: $(tail -n 1 "$LOGDIR/verify.log")"
alive
stop_wal # status 3: its frame accounting failed
# the dump and the check of its --raw output at once (wal_lib.sh)
dump_stream "pool dump" "$LOGDIR/dump.txt" "$LOGDIR/vdump.log" "$ACKS" "$SEED" -- --pool "$POOL" --verify
log "pool dump: $(tail -n 1 "$LOGDIR/vdump.log")"

# ---- the library counters, from paste-echo -------------------------------------------------------
rm -f "$POOL"
start_echo --ifname "$VETH_SRV" --ip "$STACK_IP" --port $PORT --pool "$POOL" --max-conns 8
E0=$(echo_stats)
# 12 kernel connections held open at once: 8 fit, the rest must be refused.
in_cli python3 - "$STACK_IP" $PORT <<'EOF' || fail "max-conns probe failed"
import socket, sys, time
ss = []
refused = 0
for i in range(12):
    try:  # a refused connection may already be reset while connect() returns
        ss.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5))
    except ConnectionResetError:
        refused += 1
time.sleep(0.5)
ok = 0
for s in ss:
    try:
        s.settimeout(2); s.sendall(b"ping"); ok += s.recv(4) == b"ping"
    except OSError:
        pass
print("served", ok, "reset while connecting", refused, file=sys.stderr)
sys.exit(0 if ok == 8 else 1)
EOF
# The burst after the probe: a flood's ARP thrash would otherwise disturb the probe's connections.
M3=$(gen malformed --count "$COUNT") || fail "hostile_gen malformed (echo) failed"
F3=$(gen synflood --count 10000 --rate "$RATE" --linger 1) || fail "hostile_gen synflood (echo) failed"
E1=$(echo_stats)
d() { echo $(($(stat_field "$E1" "$1") - $(stat_field "$E0" "$1"))); }
log "paste-echo counters over malformed burst + 10000 SYNs + 12 conns: steered +$(d steered) passed +$(d passed)" \
	"rx_invalid +$(d rx_invalid) rx_packets +$(d rx_packets) conns_refused +$(d conns_refused) tx_dropped +$(d tx_dropped)"
[ "$(d steered)" -ge $(($(field "$F3" syns) + $(field "$M3" sent) / 2)) ] || fail "steered did not count the burst"
[ "$(d conns_refused)" -ge 4 ] || fail "conns_refused=+$(d conns_refused) with 12 connections and --max-conns 8"
stop_echo || fail "paste-echo exited with $ECHO_RC"
