#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-echo --queues 2 on a 2-queue veth testbed (PASTE_QUEUES=2: the client's kernel spreads its
# flows over two TX queues, each lands on the same RX queue of the server end):
#  - the two workers share one XDP program (the second joins it), the port and one pool file (a
#    slice each);
#  - 128 connections echo every byte back, checked, and both workers' counters show traffic;
#  - kill -9 of worker 0 under load: worker 1 keeps serving (connections complete, no corrupted
#    byte), the supervisor restarts worker 0 on queue 0, and afterwards every connection succeeds;
#  - SIGTERM stops both: exit 0, every frame of each worker back, no XDP program left attached;
#  - kill -9 of the supervisor and both workers under load: the program stays (stale); a restart
#    replaces it, reopens both slices of the pool file (not made anew) and serves every connection;
#  - kill -9 of the supervisor alone: the workers stop (parent-death signal), nothing left attached;
#  - --transport kernel --queues 2: two SO_REUSEPORT workers on one port, both accept.
# About 10-15 s.
export PASTE_QUEUES=2
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/mq_lib.sh"

POOL=/dev/shm/paste-test-$$-mq.pool # one file, one 32 MiB slice per worker
CLEANUP_FILES+=("$POOL")
SUP_LOG=
SUP_PID=

# start_sup ARGS...: paste-echo --queues 2 ARGS in the server namespace (mq_lib.sh: SUP_PID,
# SUP_LOG, W0, W1).
start_sup() {
	sup_start "$PASTE_ECHO" paste-echo --queues 2 --port 7 --pool "$POOL" --pool-size 32M "$@"
}

# worker_stats I: the newest stats line of worker I after a SIGUSR1 to the supervisor.
worker_stats() {
	local before i
	before=$(grep -c "^stats worker=$1 " "$SUP_LOG" || true)
	for ((i = 0; i < 100; i++)); do
		((i % 20 == 0)) && { kill -USR1 "$SUP_PID" 2>/dev/null || fail "supervisor is gone"; }
		sleep 0.1
		if [ "$(grep -c "^stats worker=$1 " "$SUP_LOG" || true)" -gt "$before" ]; then
			grep "^stats worker=$1 " "$SUP_LOG" | tail -n 1
			return 0
		fi
	done
	fail "no stats line from worker $1 within 10 s of SIGUSR1"
}


# start_load TIMEOUT: 64 connections x 8 MiB in the background (LOAD_PID, LOAD_LOG), 0.3 s under way.
start_load() {
	CLIENT_N=$((CLIENT_N + 1))
	LOAD_LOG=$LOGDIR/client.$CLIENT_N.log
	ip netns exec "$NS_CLI" "$PASTE_CLIENT" --connect "$STACK_IP:7" --conns 64 --bytes 8M \
		--timeout "$1" >"$LOAD_LOG" 2>&1 &
	LOAD_PID=$!
	track_pid "$LOAD_PID"
	sleep 0.3
}

# ---- 1. two workers, one program, one port ------------------------------------------------------
start_sup --ifname "$VETH_SRV" --ip "$STACK_IP"
[ "$(grep -c 'steering program attached' "$SUP_LOG")" = 1 ] || fail "expected one worker to attach"
grep -q 'joined the steering program' "$SUP_LOG" || fail "the second worker did not join the program"
[ "$(in_srv ip -d link show dev "$VETH_SRV" | grep -c 'prog/xdp')" = 1 ] || fail "not one XDP program"
[ "$(stat -c %s "$POOL")" = $((2 * 32 * 1024 * 1024)) ] || fail "pool file is not two 32 MiB slices"
grep -q "created pool $POOL slice 1" "$SUP_LOG" || fail "worker 1 did not create slice 1 of $POOL"

# ---- 2. every byte checked, traffic on both workers ---------------------------------------------
run_client --connect "$STACK_IP:7" --conns 128 --bytes 256K --timeout 60 || fail "echo run failed"
grep -q 'ok=128 failed=0' "$CLIENT_LOG" || fail "not all 128 connections echoed correctly"
s0=$(worker_stats 0)
s1=$(worker_stats 1)
a0=$(stat_field "$s0" conns_accepted)
a1=$(stat_field "$s1" conns_accepted)
log "connections accepted: worker 0 $a0, worker 1 $a1"
[ "$a0" -gt 0 ] && [ "$a1" -gt 0 ] || fail "traffic did not reach both workers ($a0, $a1)"
[ $((a0 + a1)) -ge 128 ] || fail "workers accepted $((a0 + a1)) < 128 connections"

# ---- 3. kill -9 of worker 0 under load ----------------------------------------------------------
start_load 60
log "kill -9 worker 0 (pid $W0) under load"
kill -9 "$W0"
wait "$LOAD_PID" || true
untrack_pid "$LOAD_PID"
tail -n 1 "$LOAD_LOG" >&2
ok=$(tail -n 1 "$LOAD_LOG" | sed -n 's/.*ok=\([0-9]*\).*/\1/p')
[ "${ok:-0}" -gt 0 ] || fail "no connection completed while worker 0 was down: worker 1 stopped serving"
! grep -q 'mismatch' "$LOAD_LOG" || fail "corrupted bytes under the kill"
kill -0 "$W1" 2>/dev/null || fail "worker 1 (pid $W1) died with worker 0"
for ((i = 0; i < 300; i++)); do
	grep -q 'worker 0 ready again' "$SUP_LOG" && break
	sleep 0.1
done
grep -q "worker 0 (pid $W0) killed by signal 9" "$SUP_LOG" || fail "supervisor did not see the kill"
grep -q 'worker 0 ready again' "$SUP_LOG" || fail "worker 0 was not restarted within 30 s"
[ "$(in_srv ip -d link show dev "$VETH_SRV" | grep -c 'prog/xdp')" = 1 ] || fail "program lost"
b0=$(stat_field "$(worker_stats 0)" conns_accepted)
run_client --connect "$STACK_IP:7" --conns 64 --bytes 256K --timeout 60 || fail "run after restart"
grep -q 'ok=64 failed=0' "$CLIENT_LOG" || fail "connections failed after worker 0 was restarted"
c0=$(stat_field "$(worker_stats 0)" conns_accepted)
[ "$c0" -gt "$b0" ] || fail "the restarted worker 0 got no connection ($b0 -> $c0)"

# ---- 4. clean shutdown --------------------------------------------------------------------------
wait_both_idle() {
	local w line
	for w in 0 1; do
		line=$(worker_stats $w)
		[ "$(stat_field "$line" frames_rx)" = 0 ] && [ "$(stat_field "$line" frames_kept)" = 0 ] ||
			log "worker $w not idle yet: $line"
	done
}
wait_both_idle
stop_sup
for w in 0 1; do
	line=$(grep "^stats worker=$w " "$SUP_LOG" | tail -n 1)
	[ "$(stat_field "$line" frames_rx)" = 0 ] || fail "worker $w: frames_rx != 0 at exit: $line"
	[ "$(stat_field "$line" frames_kept)" = 0 ] || fail "worker $w: frames_kept != 0 at exit"
	[ "$(stat_field "$line" conns_open)" = 0 ] || fail "worker $w: connections open at exit"
done
! xdp_attached || fail "an XDP program is still attached after the last worker stopped"
log "clean shutdown: no program attached"

# ---- 5. kill -9 of the whole server under load; a restart on the same pool file -----------------
start_sup --ifname "$VETH_SRV" --ip "$STACK_IP"
start_load 3
log "kill -9 of the supervisor and both workers under load"
kill -9 "$SUP_PID" "$W0" "$W1"
wait "$SUP_PID" 2>/dev/null || true
untrack_pid "$SUP_PID"
wait "$LOAD_PID" || true
untrack_pid "$LOAD_PID"
! grep -q 'mismatch' "$LOAD_LOG" || fail "corrupted bytes before the kill"
xdp_attached || fail "the killed workers' program should still be attached (nobody detached it)"
start_sup --ifname "$VETH_SRV" --ip "$STACK_IP"
grep -q 'replaced a stale steering program' "$SUP_LOG" || fail "the stale program was not replaced"
! grep -q 'created pool' "$SUP_LOG" || fail "a slice was created anew instead of reopened"
[ "$(stat -c %s "$POOL")" = $((2 * 32 * 1024 * 1024)) ] || fail "the pool file changed size"
run_client --connect "$STACK_IP:7" --conns 64 --bytes 256K --timeout 60 || fail "run after the restart"
grep -q 'ok=64 failed=0' "$CLIENT_LOG" || fail "connections failed after the whole server restarted"

# ---- 6. the supervisor killed alone: its workers stop (PR_SET_PDEATHSIG), the last one detaches ---
log "kill -9 of the supervisor alone (pid $SUP_PID)"
kill -9 "$SUP_PID"
wait "$SUP_PID" 2>/dev/null || true
untrack_pid "$SUP_PID"
for ((i = 0; i < 300; i++)); do
	kill -0 "$W0" 2>/dev/null || kill -0 "$W1" 2>/dev/null || break
	sleep 0.1
done
! kill -0 "$W0" 2>/dev/null && ! kill -0 "$W1" 2>/dev/null || fail "workers outlived their supervisor"
! xdp_attached || fail "program still attached after the orphaned workers stopped"

# ---- 7. kernel transport: SO_REUSEPORT workers --------------------------------------------------
start_sup --transport kernel --ip "$SRV_IP"
run_client --connect "$SRV_IP:7" --conns 128 --bytes 64K --timeout 60 || fail "kernel echo failed"
grep -q 'ok=128 failed=0' "$CLIENT_LOG" || fail "kernel: not all connections echoed"
k0=$(stat_field "$(worker_stats 0)" conns_accepted)
k1=$(stat_field "$(worker_stats 1)" conns_accepted)
log "kernel transport: worker 0 accepted $k0, worker 1 $k1"
[ "$k0" -gt 0 ] && [ "$k1" -gt 0 ] || fail "SO_REUSEPORT did not spread connections ($k0, $k1)"
stop_sup
