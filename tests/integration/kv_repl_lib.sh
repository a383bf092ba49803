# SPDX-License-Identifier: BSD-2-Clause
# kv_repl_lib.sh - what the replication tests share (sourced after lib.sh and kv_lib.sh).

# wait_for FILE PATTERN WHAT: until FILE has a line matching PATTERN (fail after READY_TIMEOUT).
wait_for() {
	local i
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "$3: no '$2' in $1 after ${READY_TIMEOUT}s"
}

# kv_transport TRANSPORT: HOST (paste-kv's address seen from the client namespace) and KV_ARGS
# (paste-kv's transport options) for paste-kv in the server namespace.
kv_transport() {
	if [ "$1" = paste ]; then
		HOST=$STACK_IP
		KV_ARGS=(--ifname "$VETH_SRV" --ip "$STACK_IP")
	else
		HOST=$SRV_IP
		KV_ARGS=(--transport "$1" --ip "$SRV_IP")
	fi
}
