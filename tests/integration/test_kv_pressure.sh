#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-kv under pool pressure (paste transport, a 64 MiB pool: ~28,700 frames): more small keys
# than the pool has frames, each SET received in a segment of its own (16 connections, one request
# in flight each), so each value would pin the 2 KiB frame it arrived in. With the copy policy
# under pressure (--pressure-frames, default twice --reserve-frames) small values and keys are
# packed once free frames run short, and:
#  - 40,000 SETs of 16-byte values: every reply +OK (without it ~19,000 got -OOM with ~0.7 MB of
#    live data), INFO: values_packed and kept_pressure_copied_bytes > 0, rejected_oom 0, fewer
#    frames kept than keys;
#  - every key overwritten with a 24-byte value, then 60,000 random overwrites: no -OOM, and every
#    key reads back its last value (paste-bench resp-get checks each byte);
#  - kill -9, restart on the same pool: every key still holds its last value, and writes go on
#    (the packing frames' references were recovered);
#  - kill -9 under load, with every small range packed (--pressure-frames above the pool's frame
#    count: always under pressure): kv_lib.sh's crash_rounds with kv_tool.py (values up to 1500 B,
#    big strings, HSETs), two rounds: every acknowledged write survives, byte-identical.
# About 20 s. Needs redis-cli. KV_PRESSURE_ARGS (e.g. "--pressure-frames 0") adds paste-kv
# options: with 0 the first step fails, as it did before the copy policy existed.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

BENCH=$PASTE_BUILD/paste-bench
PORT=6379
KEYS=40000
[ -x "$BENCH" ] || fail "paste-bench not built ($BENCH)"
command -v redis-cli >/dev/null || fail "redis-cli not found (apt-get install redis-tools)"
read -r -a extra <<<"${KV_PRESSURE_ARGS:-}"

cli() { in_cli redis-cli -h "$STACK_IP" -p "$PORT" "$@"; }
info_field() { cli INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"; }

# bench WHAT MODE ORDER REQUESTS SIZE: paste-bench over the keyspace, one request in flight per
# connection; fails unless every reply was the expected one (+OK, or the key's value for GET).
bench() {
	local what=$1 out errs n
	out=$(in_cli "$BENCH" --connect "$STACK_IP:$PORT" --mode "$2" --key-order "$3" --requests "$4" \
		--size "$5" --keyspace "$KEYS" --no-fill --conns 16 --pipeline 1 --warmup 0 \
		--timeout 30 --json --quiet 2>&1) || fail "$what: paste-bench failed: ${out:0:3000}"
	errs=$(sed -n 's/.*"errors":{"total":\([0-9]*\).*/\1/p' <<<"$out")
	n=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
	[ "$errs" = 0 ] || fail "$what: $errs of $n replies wrong (-OOM?): ${out:0:3000}; probe SET: $(cli SET probe x)"
	[ "$n" = "$4" ] || fail "$what: $n replies measured, want $4: ${out:0:3000}"
	log "$what: $n replies, all as expected"
}

rm -f "$POOL"
start_kv --ifname "$VETH_SRV" --ip "$STACK_IP" --port "$PORT" --pool "$POOL" --pool-size 64M \
	"${extra[@]}"
total=$(info_field persistence frames_total)
((KEYS > total)) || fail "the pool has $total frames: the test needs more keys ($KEYS) than frames"

bench "SET $KEYS keys, 16 B values" resp-set seq "$KEYS" 16
packed=$(info_field stats values_packed)
pbytes=$(info_field persistence kept_pressure_copied_bytes)
kept=$(info_field persistence frames_kept)
log "values_packed=$packed kept_pressure_copied_bytes=$pbytes frames_kept=$kept of $total"
((packed > 0 && pbytes > 0)) || fail "nothing was packed under pressure (values_packed=$packed)"
((kept < KEYS)) || fail "$kept frames kept for $KEYS keys: every value still pins its frame"
[ "$(info_field stats rejected_oom)" = 0 ] || fail "rejected_oom is not 0"

bench "overwrite every key, 24 B values" resp-set seq "$KEYS" 24
bench "60000 random overwrites" resp-set uniform 60000 24
bench "GET every key" resp-get seq "$KEYS" 24
[ "$(info_field keyspace db0 | sed 's/keys=\([0-9]*\),.*/\1/')" = "$KEYS" ] || fail "DBSIZE is not $KEYS"
log "frames_kept=$(info_field persistence frames_kept) frames_free=$(info_field persistence frames_free) pool_pressure=$(info_field persistence pool_pressure)"

kill -KILL "$ECHO_PID"
wait "$ECHO_PID" 2>/dev/null || true
untrack_pid "$ECHO_PID"
start_kv --ifname "$VETH_SRV" --ip "$STACK_IP" --port "$PORT" --pool "$POOL" "${extra[@]}"
grep -q "^paste-kv: recovered keys=$KEYS .*pool_was_clean=0" "$ECHO_LOG" ||
	fail "restart after kill -9: $(grep '^paste-kv: recovered' "$ECHO_LOG")"
bench "GET every key after kill -9" resp-get seq "$KEYS" 24
bench "60000 random overwrites after the restart" resp-set uniform 60000 24
bench "GET every key again" resp-get seq "$KEYS" 24
stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"

# values kept packed while the server is killed under load (the pressure path on every write)
KV_CRASH_ARGS=(--pressure-frames 4294967295 "${extra[@]}")
crash_rounds paste "$PASTE_SRC/tests/integration/kv_tool.py" 2 100 1500
