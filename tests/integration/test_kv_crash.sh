#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Acknowledged means durable, for paste-kv, on every transport (paste, kernel, io_uring): eight connections pipeline writes
# of binary values - SETs up to 1500 bytes (many straddle segments and take the copy-once path),
# SETs of 2-300 KB (big strings: a list of references to the frames they arrived in) and HSETs
# (one piece per field) - and log every acknowledgement the moment they read it; paste-kv is killed with SIGKILL at a random moment; after the
# restart (recovery) every key the client saw acknowledged holds its last acknowledged value or a
# later one, byte-identical - also the keys of every earlier round, over several kills.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

command -v python3 >/dev/null || fail "python3 not found"
for transport in ${KV_TEST_TRANSPORTS:-paste kernel io_uring}; do
	crash_rounds "$transport" "$PASTE_SRC/tests/integration/kv_tool.py" \
		"${KV_CRASH_ROUNDS:-4}" 100 2500
done
