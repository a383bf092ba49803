#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_zc_wal: paste-wal in the guest with a zero-copy AF_XDP socket (--zero-copy required).
#  1. curl round trips from the host: a small POST carrying a random marker and a 200 KiB binary
#     one come back byte-identical with GET; right after the POST (before any reply carried the
#     bytes) the marker is found in the pool file in the guest (the bytes the NIC wrote stay in
#     the pool: the log record names them). A 64 MiB pool of its
#     own: searching it under emulation takes seconds per 64 MiB.
#  2. kill -9 under load, twice: wal_client.py load (6 connections, pipelined POSTs of 64 B..64 KiB,
#     every 201 logged) while paste-wal is killed at a random moment in the guest; the restart
#     recovers at least every acknowledged record with nothing cut; at the end every acknowledged
#     record is read back over HTTP byte-identical and the sequence is dense (verify --strict).
#     Every record is kept, so the load is bounded: at most MAX_RECORDS POSTs over all rounds
#     (about 2.3 frames each at these sizes; the 256 MiB pool has 114,686 frames). A time bound
#     alone filled the pool (507) on a faster machine: its rate is not ours to know.
#  3. /stats (after part 1 and at the end): zerocopy=1 and rx_copied_bytes=0 with the payload
#     counted; SIGTERM exits 0.
. "$(dirname "$0")/lib.sh"

CLIENT_PY=$PASTE_SRC/tests/integration/wal_client.py
POOL=/dev/shm/zc-wal.pool
RT_POOL=/dev/shm/zc-wal-rt.pool
PORT=8080
URL=http://$STACK_IP:$PORT
WAL=(paste-wal --ifname eth0 --ip "$STACK_IP" --port "$PORT" --zero-copy required)
SEED=${ZC_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
ROUNDS=${ZC_CRASH_ROUNDS:-2}
ACKS=$LOGDIR/acks
MAX_RECORDS=${ZC_MAX_RECORDS:-42000}
PER_CONN=$((MAX_RECORDS / ROUNDS / 6))
command -v curl >/dev/null || fail "curl not installed (scripts/deps)"
log "seed $SEED (ZC_SEED reproduces payloads and kill times)"

start() { # start POOL SIZE
	READY=$(vm_serve wal /tmp/wal.log $PORT "${WAL[*]}" --pool "$1" --pool-size "$2") || fail "paste-wal did not start: $READY"
	log "$READY"
	[ "$(field "$READY" zerocopy)" = 1 ] || fail "paste-wal is not zero-copy: $READY"
}
# check_stats MIN: /stats says zero-copy, no receive copy, at least MIN payload bytes.
check_stats() {
	local stats
	stats=$(on_host curl -sS -m 60 "$URL/stats") || fail "GET /stats failed"
	jget() { echo "$stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
	log "stats: zerocopy=$(jget zerocopy) rx_payload_bytes=$(jget rx_payload_bytes) rx_copied_bytes=$(jget rx_copied_bytes) records=$(jget records)"
	[ "$(jget zerocopy)" = 1 ] || fail "/stats: zerocopy is not 1: $stats"
	[ "$(jget rx_copied_bytes)" = 0 ] || fail "/stats: rx_copied_bytes=$(jget rx_copied_bytes): the receive path copied"
	[ "$(jget rx_payload_bytes)" -ge "$1" ] || fail "/stats: rx_payload_bytes=$(jget rx_payload_bytes) < $1"
	[ "$(jget records)" -ge "$(nacks)" ] || fail "/stats: records=$(jget records) < $(nacks) acknowledged"
}
nacks() { if [ -f "$ACKS" ]; then wc -l <"$ACKS"; else echo 0; fi; }

start $RT_POOL 64M

# 1. Round trips; the marker must be in the pool's bytes.
marker=zc-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf 'record %s end\n' "$marker" >"$LOGDIR/small.bin"
head -c 200K /dev/urandom >"$LOGDIR/big.bin"
post() { # post FILE: the seq of the record
	on_host curl -sS -m 60 --data-binary "@$1" "$URL/log" | sed -n 's/.*"seq":\([0-9]*\).*/\1/p'
}
seq_small=$(post "$LOGDIR/small.bin")
[ -n "$seq_small" ] || fail "POST of small.bin got no seq"
# Before anything is sent back: the body is in the pool, in the frame the NIC wrote it to.
n=$(in_vm "strings -n 32 $RT_POOL | grep -c '$marker'") || fail "the POSTed marker is not in the pool file"
log "the POSTed marker is in the pool file ($n time(s)) before any GET"
seq_big=$(post "$LOGDIR/big.bin")
[ -n "$seq_big" ] || fail "POST of big.bin got no seq"
for f in small big; do
	seq=seq_$f
	on_host curl -sS -m 60 -o "$LOGDIR/$f.back" "$URL/log/${!seq}" || fail "GET /log/${!seq} failed"
	cmp -s "$LOGDIR/$f.bin" "$LOGDIR/$f.back" || fail "record ${!seq} ($f.bin) came back different"
done
check_stats 200000
vm_signal wal TERM
rc=$(vm_wait wal)
[ "$rc" = 0 ] || fail "paste-wal exited with status $rc after SIGTERM"
in_vm "rm -f $RT_POOL"
log "curl: small and 200 KiB records byte-identical"

start $POOL 256M

# 2. kill -9 under load, restart, everything acknowledged is there.
for ((r = 1; r <= ROUNDS; r++)); do
	before=$(nacks)
	bg_host python3 "$CLIENT_PY" load --host "$STACK_IP" --port $PORT --conns 6 --depth 4 \
		--duration 6 --stall 3 --grace 5 --max-size 65536 --seed "$SEED" --conn-base $((r * 100)) \
		--max-requests "$PER_CONN" --ack-file "$ACKS" >"$LOGDIR/load.$r.log" 2>&1
	cpid=$BG_PID
	ms=$((800 + RANDOM % 1600))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	vm_signal wal KILL || fail "round $r: paste-wal was not running at the kill"
	rc=$(vm_wait wal)
	[ "$rc" = 137 ] || fail "round $r: paste-wal status $rc after SIGKILL"
	rc=0
	wait "$cpid" || rc=$?
	sum=$(grep '^wal_client: load' "$LOGDIR/load.$r.log" || true)
	[ $rc -eq 0 ] && [ -n "$sum" ] || { cat "$LOGDIR/load.$r.log" >&2; fail "round $r: client status $rc"; }
	[ "$(field "$sum" errors)" = 0 ] || fail "round $r: the server refused requests: $sum"
	after=$(nacks)
	[ "$after" -gt "$before" ] || fail "round $r: nothing was acknowledged"
	log "round $r: SIGKILL at $ms ms; $sum; $((after - before)) new acks"
	start $POOL 256M
	[ "$(field "$READY" recovered)" -ge "$after" ] ||
		fail "round $r: recovered $(field "$READY" recovered), but $after were acknowledged"
	[ "$(field "$READY" dropped)" = 0 ] || fail "round $r: recovery cut records"
done
on_host python3 "$CLIENT_PY" verify --host "$STACK_IP" --port $PORT --ack-file "$ACKS" --seed "$SEED" \
	--strict >"$LOGDIR/verify.log" 2>&1 || { cat "$LOGDIR/verify.log" >&2; fail "records read back differ"; }
log "$(tail -n 1 "$LOGDIR/verify.log")"

# 3. The counters of the last run: zero copy, nothing copied on receive.
check_stats 1
vm_signal wal TERM
rc=$(vm_wait wal)
[ "$rc" = 0 ] || fail "paste-wal exited with status $rc after SIGTERM"
in_vm "rm -f $POOL"
