#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-echo on the io_uring transport (--transport io_uring: multishot accept, multishot recv into
# a provided-buffer ring of pool frames), on the server namespace's own address. 100 concurrent
# clients push bytes through it and check every byte echoed, ending every way a connection can end
# (client close, half close, server close after --max-bytes, RST, all mixed), blocking and with
# --busy-poll; then with a pool so small that the buffer ring runs dry under 200 connections
# (the kernel's -ENOBUFS: the recvs must resume once frames are free, and nothing is lost), and
# with two worker processes sharing the port.
# Afterwards the counters must show a quiet server: no connection open, every frame back in the
# allocator or on the ring, and SIGTERM ends it with status 0. paste-wal and paste-kv run on this
# transport in test_wal.sh, test_wal_crash.sh, test_kv.sh and test_kv_crash.sh (their mode lists).
. "$(dirname "$0")/lib.sh"
testbed_up

PORT=7
to=(--timeout 120)

# quiet LINE: no connection, no frame held, free + on the ring = all.
quiet() {
	local line=$1 free fill total
	[ "$(stat_field "$line" conns_open)" = 0 ] || fail "conns_open != 0: $line"
	[ "$(stat_field "$line" frames_rx)" = 0 ] || fail "received frames still held: $line"
	[ "$(stat_field "$line" frames_kept)" = 0 ] || fail "frames kept by the echo: $line"
	free=$(stat_field "$line" frames_free)
	fill=$(stat_field "$line" frames_fill)
	total=$(stat_field "$line" frames_total)
	[ $((free + fill)) -eq "$total" ] || fail "frames_free+frames_fill != frames_total: $line"
	[ "$fill" -gt 0 ] || fail "no frame on the receive ring: $line"
	log "quiet: frames $free free + $fill on the ring = $total"
}

# all_closes ARGS...: the five ways to end, against paste-echo ARGS (which must not close by
# itself: --max-bytes is added for the server-close runs).
all_closes() {
	start_echo "$@"
	grep -q '^paste-echo: ready transport=io_uring ' "$ECHO_LOG" || fail "not on io_uring: $(cat "$ECHO_LOG")"
	grep -q 'io_uring transport: multishot recv into' "$ECHO_LOG" || fail "no transport line"
	run_client --connect "$SRV_IP:$PORT" --conns 100 --bytes 1M --close client --seed 1 "${to[@]}" ||
		fail "--close client: client failed"
	run_client --connect "$SRV_IP:$PORT" --conns 100 --bytes 1M --close half --seed 2 "${to[@]}" ||
		fail "--close half: client failed"
	quiet "$(wait_idle 10)"
	stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
	start_echo "$@" --max-bytes 262144
	run_client --connect "$SRV_IP:$PORT" --conns 100 --bytes 256K --close server --seed 3 "${to[@]}" ||
		fail "--close server: client failed"
	run_client --connect "$SRV_IP:$PORT" --conns 100 --bytes 256K --mix --seed 4 "${to[@]}" ||
		fail "--mix: client failed"
	grep -q ' reset=25 ' "$CLIENT_LOG" || fail "--mix: expected 25 reset connections"
	quiet "$(wait_idle 10)"
	stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
}

common=(--transport io_uring --ip "$SRV_IP" --port "$PORT" --pool "$POOL" --pool-size 64M)
log "==== blocking ===="
all_closes "${common[@]}"
log "==== busy-poll ===="
all_closes "${common[@]}" --busy-poll

# A buffer ring of 64 frames (--ring-size) for 200 connections sending at once: the ring runs
# dry, recvs end with -ENOBUFS and must resume as the echo releases frames, losing nothing.
log "==== ring runs dry ===="
start_echo --transport io_uring --ip "$SRV_IP" --port "$PORT" --pool "$POOL" --ring-size 64 --batch 64
run_client --connect "$SRV_IP:$PORT" --conns 200 --bytes 2M --close client --seed 5 "${to[@]}" ||
	fail "ring of 64: client failed"
line=$(wait_idle 10)
quiet "$line"
[ "$(stat_field "$line" rx_dropped)" -gt 0 ] || fail "the ring never ran dry (rx_dropped=0): $line"
log "ring of 64: rx_dropped (recvs that found the ring empty, resumed) = $(stat_field "$line" rx_dropped)"
stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"

# Two worker processes, one ring each, sharing the port (SO_REUSEPORT): every byte still checked.
log "==== two workers ===="
rm -f "$POOL"
start_echo --transport io_uring --ip "$SRV_IP" --port "$PORT" --pool "$POOL" --pool-size 64M --queues 2
run_client --connect "$SRV_IP:$PORT" --conns 100 --bytes 1M --close client --seed 6 "${to[@]}" ||
	fail "--queues 2: client failed"
stop_echo || fail "paste-echo --queues 2 exited with status $ECHO_RC after SIGTERM (expected 0)"
[ "$(grep -c '^paste-echo: ready worker=' "$ECHO_LOG")" = 2 ] || fail "not two workers: $(cat "$ECHO_LOG")"

# A bad --transport is refused with the list of choices.
out=$("$PASTE_ECHO" --transport uring --port 1 2>&1) && fail "--transport uring accepted"
grep -q "paste, kernel or io_uring" <<<"$out" || fail "--transport error: $out"
log "io_uring transport: all checks passed"
