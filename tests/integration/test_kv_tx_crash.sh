#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Multi-key writes are all-or-nothing under kill -9, on both transports: six connections repeat
# MULTI/EXEC (12 SETs, one a big string, and a 4-field HSET), MSET of 24 keys (two big) and HSET
# of 16 fields (one big), each on its own group of keys with values that encode the write's
# number; paste-kv is killed with SIGKILL 0.1-1.1 s after the first acknowledgement, 5 times per transport (KV_CRASH_ROUNDS); after each restart every group
# holds the values of one write only (all old or all new), at least the last acknowledged one,
# byte-identical - also the groups of every earlier round. The recovered line's tx_undone counts
# the writes the undo log rolled back (kv_tx.c).
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

command -v python3 >/dev/null || fail "python3 not found"
for transport in ${KV_TEST_TRANSPORTS:-paste kernel}; do
	crash_rounds "$transport" "$PASTE_SRC/tests/integration/kv_tx_tool.py" \
		"${KV_CRASH_ROUNDS:-5}" 100 1000
done
log "undo entries rolled back over all restarts: $UNDONE"
