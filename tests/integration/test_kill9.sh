#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Crash and restart: paste-echo is killed with SIGKILL in the middle of a transfer, which leaves its
# XDP program attached and its pool file behind. A new paste-echo on the same interface and pool
# must replace the stale program, serve a full run, and leave no XDP program after SIGTERM.
. "$(dirname "$0")/lib.sh"
testbed_up

PORT=7
ARGS=(--ifname "$VETH_SRV" --ip "$STACK_IP" --port "$PORT" --pool "$POOL" --pool-size 64M)

start_echo "${ARGS[@]}"
run_client --connect "$STACK_IP:$PORT" --conns 10 --bytes 256K --timeout 60 ||
	fail "first client run failed"

# A long transfer in the background, then SIGKILL while it is under way.
ip netns exec "$NS_CLI" "$PASTE_CLIENT" --connect "$STACK_IP:$PORT" --conns 20 --bytes 64M \
	--timeout 8 --quiet --seed 9 >"$LOGDIR/client-killed.log" 2>&1 &
BG=$!
track_pid "$BG"
sleep 1
kill -KILL "$ECHO_PID"
rc=0
wait "$ECHO_PID" 2>/dev/null || rc=$? # (no "Killed" job notice)
untrack_pid "$ECHO_PID"
log "paste-echo killed (status $rc) during a transfer"
if xdp_attached; then log "stale XDP program left on $VETH_SRV (expected)"; fi
[ -e "$POOL" ] || fail "pool file $POOL vanished after SIGKILL"

# The interrupted client must fail (its server is gone); wait for it, bounded by its own timeout.
rc=0
wait "$BG" || rc=$?
untrack_pid "$BG"
log "interrupted client: $(tail -n 1 "$LOGDIR/client-killed.log") (status $rc)"
[ $rc -ne 0 ] || fail "the interrupted client reported success against a killed server"

# Restart on the same interface and pool.
start_echo "${ARGS[@]}"
run_client --connect "$STACK_IP:$PORT" --conns 100 --bytes 1M --close client --timeout 120 ||
	fail "client run after restart failed"
run_client --connect "$STACK_IP:$PORT" --conns 100 --bytes 256K --close half --seed 2 --timeout 120 ||
	fail "half-close run after restart failed"
line=$(wait_idle 10)
log "$line"
check_quiescent "$line"

stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
if xdp_attached; then
	in_srv ip -d link show dev "$VETH_SRV" >&2
	fail "an XDP program is still attached to $VETH_SRV after SIGTERM"
fi
