#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# BITPOS and BITCOUNT on paste-kv reply exactly as redis-server does (kv_bitops_cmp.py: edge cases,
# then 3300 random calls), and SORT too (kv_sort_cmp.py: edge cases, then 200 random sorts), both
# servers on the kernel transport in the server namespace. Skipped (77) without redis-server.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh" # start_kv

command -v redis-server >/dev/null || { log "redis-server not installed: skipped"; exit 77; }

start_kv --transport kernel --ip "$SRV_IP" --port 6379 --pool "$POOL" --pool-size 128M
ip netns exec "$NS_SRV" redis-server --port 6380 --bind "$SRV_IP" --protected-mode no --save '' \
	--appendonly no >"$LOGDIR/redis.log" 2>&1 &
REDIS_PID=$!
track_pid "$REDIS_PID"
for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
	grep -q 'Ready to accept' "$LOGDIR/redis.log" && break
	kill -0 "$REDIS_PID" 2>/dev/null || fail "redis-server exited before it was ready"
	sleep 0.1
done
in_cli python3 "$PASTE_SRC/tests/integration/kv_bitops_cmp.py" "$SRV_IP" 6379 6380 ||
	fail "BITPOS/BITCOUNT replies differ from redis-server's"
in_cli python3 "$PASTE_SRC/tests/integration/kv_sort_cmp.py" "$SRV_IP" 6379 6380 ||
	fail "SORT replies differ from redis-server's"
kill_pid "$REDIS_PID"
untrack_pid "$REDIS_PID"
stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
