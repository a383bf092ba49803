#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Multi-key writes are all-or-nothing under kill -9, on both transports: six connections repeat
# MULTI/EXEC (12 SETs, one a big string, and a 4-field HSET), MSET of 24 keys (two big) and HSET
# of 16 fields (one big), each on its own group of keys with values that encode the write's
# number; paste-kv is killed with SIGKILL 0.1-1.1 s after the first acknowledgement, 5 times per transport (KV_CRASH_ROUNDS); after each restart every group
# holds the values of one write only (all old or all new), at least the last acknowledged one,
# byte-identical - also the groups of every earlier round. The recovered line's tx_undone counts
# the writes the undo log rolled back (kv_tx.c). The transports run at the same time.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

command -v python3 >/dev/null || fail "python3 not found"
# crash_on TR N: the rounds on transport TR, port 6379 + N, pool paste-test-PID-TR.pool; the
# transports run at the same time (lib.sh in_parallel).
crash_on() {
	local POOL=/dev/shm/paste-test-$$-$1.pool KV_PORT=$((6379 + $2))
	ECHO_N=$((100 * $2))
	crash_rounds "$1" "$PASTE_SRC/tests/integration/kv_tx_tool.py" "${KV_CRASH_ROUNDS:-5}" 100 1000
	log "$1: undo entries rolled back over its restarts: $UNDONE"
}
TRS=(${KV_TEST_TRANSPORTS:-paste kernel})
for transport in "${TRS[@]}"; do
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$transport.pool")
done
in_parallel crash_on "${TRS[@]}"
