#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Acknowledged means durable, for paste-kv, on every transport (paste, kernel, io_uring): eight connections pipeline writes
# of binary values - SETs up to 1500 bytes (many straddle segments and take the copy-once path),
# SETs of 2-300 KB (big strings: a list of references to the frames they arrived in) and HSETs
# (one piece per field) - and log every acknowledgement the moment they read it; paste-kv is killed with SIGKILL at a random moment; after the
# restart (recovery) every key the client saw acknowledged holds its last acknowledged value or a
# later one, byte-identical - also the keys of every earlier round, over several kills. The
# transports run at the same time.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

command -v python3 >/dev/null || fail "python3 not found"
# crash_on TR N: the rounds on transport TR, port 6379 + N, pool paste-test-PID-TR.pool; the
# transports run at the same time (lib.sh in_parallel).
crash_on() {
	local POOL=/dev/shm/paste-test-$$-$1.pool KV_PORT=$((6379 + $2))
	ECHO_N=$((100 * $2))
	crash_rounds "$1" "$PASTE_SRC/tests/integration/kv_tool.py" \
		"${KV_CRASH_ROUNDS:-4}" 100 1400 # the SIGKILL 0.1-1.5 s after the first ack
}
TRS=(${KV_TEST_TRANSPORTS:-paste kernel io_uring})
for transport in "${TRS[@]}"; do
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$transport.pool")
done
in_parallel crash_on "${TRS[@]}"
