#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_zc_kv: paste-kv in the guest with a zero-copy AF_XDP socket (--zero-copy required).
#  1. redis-cli from the host: SET/GET of a value that arrives in one segment and of one that is
#     split over two (2000 bytes; paste-kv's limit with 2 KiB frames is 2047), byte-identical; INFO reports zerocopy:1 and rx_copied_bytes:0.
#  2. redis-benchmark (SET and GET, 20 clients, pipelined) completes with every request answered.
#  3. kill -9 under SET load, twice (kv_tool.py load logs every +OK the moment it is read);
#     after each restart every acknowledged SET holds its value or a later one (kv_tool.py check).
#  4. SIGTERM exits 0.
. "$(dirname "$0")/lib.sh"

KV_TOOL=$PASTE_SRC/tests/integration/kv_tool.py
POOL=/dev/shm/zc-kv.pool
PORT=6379
KV=(paste-kv --ifname eth0 --ip "$STACK_IP" --port "$PORT" --pool "$POOL" --pool-size 128M --zero-copy required)
ROUNDS=${ZC_CRASH_ROUNDS:-2}
command -v redis-cli >/dev/null || fail "redis-cli not installed (scripts/deps)"
cli() { on_host redis-cli -h "$STACK_IP" -p $PORT "$@"; }

start() {
	READY=$(vm_serve kv /tmp/kv.log $PORT "${KV[*]}") || fail "paste-kv did not start: $READY"
	log "$READY"
	[ "$(field "$READY" zerocopy)" = 1 ] || fail "paste-kv is not zero-copy: $READY"
}
start

# 1. Values through redis-cli.
small="zc-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
[ "$(cli SET zc:small "$small")" = OK ] || fail "SET zc:small failed"
[ "$(cli GET zc:small)" = "$small" ] || fail "GET zc:small differs"
big=$(od -An -N1000 -tx1 /dev/urandom | tr -d ' \n')
[ ${#big} = 2000 ] || fail "test setup: value of ${#big} bytes"
[ "$(cli SET zc:big "$big")" = OK ] || fail "SET zc:big failed"
[ "$(cli GET zc:big)" = "$big" ] || fail "GET zc:big (2000 bytes) came back different"
info=$(cli INFO | tr -d '\r')
grep -qx 'zerocopy:1' <<<"$info" || fail "INFO: no zerocopy:1"
grep -qx 'rx_copied_bytes:0' <<<"$info" || fail "INFO: rx_copied_bytes is not 0: $(echo "$info" | grep rx_copied)"
log "redis-cli: small and 2000-byte values byte-identical; INFO zerocopy:1 rx_copied_bytes:0"

# 2. redis-benchmark.
on_host timeout 240 redis-benchmark -h "$STACK_IP" -p $PORT -t set,get -n 20000 -c 20 -P 4 -d 256 -q \
	>"$LOGDIR/bench.txt" 2>&1 || { cat "$LOGDIR/bench.txt" >&2; fail "redis-benchmark failed"; }
tr '\r' '\n' <"$LOGDIR/bench.txt" | grep -E '^(SET|GET): .* requests per second' >"$LOGDIR/bench.sum" || true
[ "$(wc -l <"$LOGDIR/bench.sum")" = 2 ] || { cat "$LOGDIR/bench.txt" >&2; fail "redis-benchmark did not finish SET and GET"; }
log "redis-benchmark (TCG, not a benchmark): $(tr '\n' ' ' <"$LOGDIR/bench.sum")"

# 3. kill -9 under SET load.
logs=()
for ((r = 1; r <= ROUNDS; r++)); do
	logs+=("$LOGDIR/acked.$r")
	bg_host python3 "$KV_TOOL" load "$STACK_IP" $PORT "${logs[-1]}" "zc$r" >"$LOGDIR/load.$r.txt" 2>&1
	lpid=$BG_PID
	ms=$((1500 + RANDOM % 2500))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	vm_signal kv KILL || fail "round $r: paste-kv was not running at the kill"
	rc=$(vm_wait kv)
	[ "$rc" = 137 ] || fail "round $r: paste-kv status $rc after SIGKILL"
	wait "$lpid" || true # its connections fail or time out
	n=$(wc -l <"${logs[-1]}")
	[ "$n" -gt 0 ] || fail "round $r: no SET was acknowledged"
	log "round $r: SIGKILL after $ms ms, $n SETs acknowledged"
	start
	on_host python3 "$KV_TOOL" check "$STACK_IP" $PORT "${logs[@]}" >"$LOGDIR/check.$r.txt" 2>&1 ||
		{ cat "$LOGDIR/check.$r.txt" >&2; fail "round $r: an acknowledged SET was lost"; }
	log "round $r: $(tail -n 1 "$LOGDIR/check.$r.txt")"
done
[ "$(cli GET zc:small)" = "$small" ] || fail "zc:small lost across the restarts"

vm_signal kv TERM
rc=$(vm_wait kv)
[ "$rc" = 0 ] || fail "paste-kv exited with status $rc after SIGTERM"
in_vm "rm -f $POOL"
