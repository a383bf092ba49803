#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-kv's large keys (longer than a frame, up to --max-key, 512 MB by default: kept as chunks in
# the frames they arrived in, named by a hash surrogate; docs/paste-kv.md), on every transport:
#  - kv_lkey_tool.py func: SET/GET/APPEND/EXPIRE/RENAME/COPY/HSET/DEL/MULTI/WATCH/KEYS/SCAN/
#    RANDOMKEY/SELECT with binary keys of 100 B, 2 KiB, 64 KiB and 1 MiB, and one byte of
#    difference making another key;
#  - SIGTERM, restart: the same keys, values and hashes byte-identical (verify), no orphan chunk;
#  - kill -9 under a load of large-key writes (SET with keys of 2 KiB-1 MiB, HSET on large keys),
#    twice: after each restart every acknowledged write is there, byte-identical;
#  - --max-key: a key one byte over it is refused with Redis' kind of error.
# About 20 s per transport; the transports run at the same time. Needs python3.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

TOOL=$PASTE_SRC/tests/integration/kv_lkey_tool.py
PORT=6379
command -v python3 >/dev/null || fail "python3 not found"

# one_transport TR N: on port 6379 + N with pool paste-test-PID-TR.pool; the transports run at the
# same time (lib.sh in_parallel).
one_transport() {
	local tr=$1 args host POOL=/dev/shm/paste-test-$$-$1.pool PORT=$((6379 + $2)) KV_PORT=$((6379 + $2))
	ECHO_N=$((100 * $2))
	kv_target "$tr"
	host=$KV_HOST
	args=("${KV_ARGS[@]}")
	rm -f "$POOL"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL" --pool-size 256M
	in_cli python3 "$TOOL" func "$host" "$PORT" >"$LOGDIR/func.$tr.txt" 2>&1 ||
		{ cat "$LOGDIR/func.$tr.txt" >&2; fail "$tr: large keys"; }
	log "$tr: $(tail -n 1 "$LOGDIR/func.$tr.txt")"
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL"
	grep -q '^paste-kv: recovered keys=16 .* orphan_pieces=0 ' "$ECHO_LOG" ||
		fail "$tr: restart: $(grep '^paste-kv: recovered' "$ECHO_LOG")"
	in_cli python3 "$TOOL" verify "$host" "$PORT" >"$LOGDIR/verify.$tr.txt" 2>&1 ||
		{ cat "$LOGDIR/verify.$tr.txt" >&2; fail "$tr: large keys after a restart"; }
	log "$tr: $(tail -n 1 "$LOGDIR/verify.$tr.txt")"
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL" --max-key 2M
	in_cli python3 "$TOOL" limit "$host" "$PORT" $((2 << 20)) >"$LOGDIR/limit.$tr.txt" 2>&1 ||
		{ cat "$LOGDIR/limit.$tr.txt" >&2; fail "$tr: --max-key"; }
	log "$tr: $(tail -n 1 "$LOGDIR/limit.$tr.txt")"
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
	crash_rounds "$tr" "$TOOL" "${KV_LKEY_CRASH_ROUNDS:-2}" 300 1500
}

TRS=(${KV_TEST_TRANSPORTS:-paste kernel io_uring})
for transport in "${TRS[@]}"; do
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$transport.pool")
done
in_parallel one_transport "${TRS[@]}"
