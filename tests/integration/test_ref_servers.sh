#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/integration/test_ref_servers.sh - the reference WAL servers of bench/compare (ref-epoll,
# ref-uring; issue 15) answer like paste-wal and keep what they acknowledge.
#
# For each server built: start it in the server namespace on a private testbed, run
# ref_check.py proto from the client namespace (bodies of 1 B to 8 KiB whole, in 300-byte pieces
# over time and pipelined; Connection: close -> 201 then EOF; /stats, DELETE, 404; a malformed
# head -> 400 and close; a body over 8 KiB -> 413 and close), a short paste-bench http-post load
# (every reply checked: status, seq order), then SIGTERM (exit status 0). ref_check.py verify
# reads the log file after the protocol check (every acknowledged record present, body byte for
# byte, CRC32C). Then the
# emulated media latency: with PASTE_EMU_FENCE_NS=2000000 no 1-connection request completes in
# under 2 ms (a lower bound, safe under CPU contention), nor with PASTE_EMU_LINE_NS=100000 a
# 1280-byte one (20+ flushed lines), and a bad value is refused with exit 2;
# the same for paste-wal --transport kernel, which takes the variable as its --fence-delay.
# About 20 s per server.
. "$(dirname "$0")/lib.sh"
testbed_up

CHECK=$PASTE_SRC/tests/integration/ref_check.py
BENCH=$PASTE_BUILD/paste-bench
ACKS=$LOGDIR/acks
SRV_PID=

# start_ref BIN [ENV=VALUE...]: run BIN on $SRV_IP:8080 with the test's pool; wait for "ready".
start_ref() {
	local bin=$1 i name
	shift
	name=$(basename "$bin")
	rm -f "$POOL"
	start_ready "$name" "$LOGDIR/$name.log" ip netns exec "$NS_SRV" env "$@" "$bin" --ip "$SRV_IP" \
		--port 8080 --pool "$POOL" --pool-size 64M
	SRV_PID=$READY_PID
}

stop_ref() {
	local rc=0
	kill -TERM "$SRV_PID"
	wait "$SRV_PID" || rc=$?
	untrack_pid "$SRV_PID"
	return $rc
}

[ -x "$BENCH" ] || fail "paste-bench not built ($BENCH)"
ran=0
for name in ref-epoll ref-uring; do
	bin=$PASTE_BUILD/$name
	if [ ! -x "$bin" ]; then
		log "$name not built: skipped"
		continue
	fi
	ran=$((ran + 1))
	start_ref "$bin" PASTE_EMU_FENCE_NS=0
	in_cli python3 "$CHECK" proto --host "$SRV_IP" --port 8080 --acks "$ACKS" || fail "$name: protocol check failed"
	# The log file is the shared mapping: check it now, before the load below wraps the ring.
	python3 "$CHECK" verify --pool "$POOL" --kind "$name" --acks "$ACKS" || fail "$name: log check failed"
	out=$(in_cli "$BENCH" --mode http-post --connect "$SRV_IP:8080" --size 1280 --conns 8 \
		--duration 2 --warmup 0.2 --timeout 10 --json --quiet) || fail "$name: paste-bench failed: $out"
	errs=$(sed -n 's/.*"errors":{"total":\([0-9]*\).*/\1/p' <<<"$out")
	[ "$errs" = 0 ] || fail "$name: paste-bench counted $errs reply errors: $out"
	log "$name: paste-bench $(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$out") req/s, 0 reply errors"
	stop_ref || fail "$name exited with status $? after SIGTERM"

	# Emulated media latency: every request waits at least one 2 ms fence.
	start_ref "$bin" PASTE_EMU_FENCE_NS=2000000
	out=$(in_cli "$BENCH" --mode http-post --connect "$SRV_IP:8080" --size 64 --conns 1 \
		--duration 1 --warmup 0.1 --json --quiet) || fail "$name: paste-bench (fence delay) failed"
	min=$(sed -n 's/.*"latency_us":{"min":\([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$min" ] || fail "$name: no latency in $out"
	python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 2000 else 1)" "$min" ||
		fail "$name: with PASTE_EMU_FENCE_NS=2000000 a request took only $min us"
	stop_ref || fail "$name exited with status $? after SIGTERM"
	log "$name: PASTE_EMU_FENCE_NS=2000000 -> fastest request $min us"
	# Per flushed line: a 1280 B body spans at least 20 cache lines, 100 us each.
	start_ref "$bin" PASTE_EMU_LINE_NS=100000
	out=$(in_cli "$BENCH" --mode http-post --connect "$SRV_IP:8080" --size 1280 --conns 1 \
		--duration 1 --warmup 0.1 --json --quiet) || fail "$name: paste-bench (line delay) failed"
	min=$(sed -n 's/.*"latency_us":{"min":\([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$min" ] || fail "$name: no latency in $out"
	python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 2000 else 1)" "$min" ||
		fail "$name: with PASTE_EMU_LINE_NS=100000 a 1280 B request took only $min us"
	stop_ref || fail "$name exited with status $? after SIGTERM"
	log "$name: PASTE_EMU_LINE_NS=100000 -> fastest 1280 B request $min us"
	rc=0
	PASTE_EMU_LINE_NS=soon "$bin" --pool "$POOL.y" >"$LOGDIR/$name.badl.log" 2>&1 || rc=$?
	[ $rc = 2 ] && grep -q PASTE_EMU_LINE_NS "$LOGDIR/$name.badl.log" ||
		fail "$name: a bad PASTE_EMU_LINE_NS gave exit $rc: $(cat "$LOGDIR/$name.badl.log")"
	rc=0
	PASTE_EMU_FENCE_NS=soon "$bin" --pool "$POOL.x" >"$LOGDIR/$name.bad.log" 2>&1 || rc=$?
	[ $rc = 2 ] && grep -q PASTE_EMU_FENCE_NS "$LOGDIR/$name.bad.log" ||
		fail "$name: a bad PASTE_EMU_FENCE_NS gave exit $rc: $(cat "$LOGDIR/$name.bad.log")"
	[ ! -e "$POOL.x" ] || fail "$name created its log despite a bad option"
done
[ $ran -gt 0 ] || fail "neither ref-epoll nor ref-uring is built"

# paste-wal takes the same variable as the default of --fence-delay (the library's fence spins).
WAL=$PASTE_BUILD/paste-wal
[ -x "$WAL" ] || fail "paste-wal not built"
rc=0
PASTE_EMU_FENCE_NS=soon "$WAL" --transport kernel --port 8080 --pool "$POOL.x" >"$LOGDIR/wal.bad.log" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q PASTE_EMU_FENCE_NS "$LOGDIR/wal.bad.log" ||
	fail "paste-wal: a bad PASTE_EMU_FENCE_NS gave exit $rc: $(cat "$LOGDIR/wal.bad.log")"
rm -f "$POOL"
start_ready paste-wal "$LOGDIR/paste-wal.log" ip netns exec "$NS_SRV" env PASTE_EMU_FENCE_NS=2000000 \
	"$WAL" --transport kernel --ip "$SRV_IP" --port 8080 --pool "$POOL" --pool-size 64M
SRV_PID=$READY_PID
out=$(in_cli "$BENCH" --mode http-post --connect "$SRV_IP:8080" --size 64 --conns 1 \
	--duration 1 --warmup 0.1 --json --quiet) || fail "paste-wal: paste-bench (fence delay) failed"
min=$(sed -n 's/.*"latency_us":{"min":\([0-9.]*\).*/\1/p' <<<"$out")
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 2000 else 1)" "${min:-0}" ||
	fail "paste-wal: with PASTE_EMU_FENCE_NS=2000000 a request took only ${min:-?} us"
stop_ref || fail "paste-wal exited with status $? after SIGTERM"
log "paste-wal --transport kernel: PASTE_EMU_FENCE_NS=2000000 -> fastest request $min us"
