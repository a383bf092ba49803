#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Failover of a paste-kv primary by redis-sentinel, on the paste and kernel transports: paste-kv in
# the server namespace with two redis-server replicas and one sentinel (quorum 1) in the client
# namespace. The sentinel finds the replicas through paste-kv's INFO replication, talks to it
# (CLIENT SETNAME, PING, INFO, PUBLISH and SUBSCRIBE on __sentinel__:hello); paste-kv is killed
# with SIGKILL; the sentinel promotes a replica; a client that asks the sentinel
# (SENTINEL get-master-addr-by-name) finds a primary that holds exactly the data paste-kv held
# (same keys, contents and expiry times: kv_repl_tool.py digest) and takes writes. Skipped (77)
# without redis-server or redis-sentinel.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"
. "$(dirname "$0")/kv_repl_lib.sh" # wait_for, kv_transport

for p in redis-server redis-sentinel; do
	command -v $p >/dev/null || { log "$p not installed: skipped"; exit 77; }
done
TOOL=$PASTE_SRC/tests/integration/kv_repl_tool.py

PIDS=()
start_bg() { # LOG CMD...: in the client namespace
	local logf=$1
	shift
	ip netns exec "$NS_CLI" "$@" >"$logf" 2>&1 &
	track_pid $!
	PIDS+=($!)
}

scli() { in_cli redis-cli -h "$CLI_IP" -p 26379 "$@"; }

for tr in ${KV_TEST_TRANSPORTS:-paste kernel}; do
	kv_transport "$tr"
	rm -f "$POOL"
	start_kv "${KV_ARGS[@]}" --port 6379 --pool "$POOL" --pool-size 512M
	in_cli python3 "$TOOL" fill "$HOST" 6379 "$tr" || fail "$tr: fill"
	for port in 6380 6381; do
		mkdir -p "$LOGDIR/$tr.$port"
		start_bg "$LOGDIR/replica.$tr.$port.log" redis-server --port $port --bind "$CLI_IP" \
			--protected-mode no --save '' --appendonly no --dir "$LOGDIR/$tr.$port" \
			--replicaof "$HOST" 6379
		wait_for "$LOGDIR/replica.$tr.$port.log" 'sync: Finished with success' "replica $port"
	done
	conf=$LOGDIR/sentinel.$tr.conf
	printf '%s\n' "port 26379" "bind $CLI_IP" "protected-mode no" "dir $LOGDIR" \
		"sentinel monitor pk $HOST 6379 1" "sentinel down-after-milliseconds pk 2000" \
		"sentinel failover-timeout pk 10000" >"$conf"
	start_bg "$LOGDIR/sentinel.$tr.log" redis-sentinel "$conf"
	wait_for "$LOGDIR/sentinel.$tr.log" "+slave slave $CLI_IP:6381" "sentinel: replica 6381 found"
	wait_for "$LOGDIR/sentinel.$tr.log" "+slave slave $CLI_IP:6380" "sentinel: replica 6380 found"
	in_cli python3 "$TOOL" fill "$HOST" 6379 "$tr-2" || fail "$tr: fill 2"
	[ "$(in_cli redis-cli -h "$HOST" -p 6379 WAIT 2 5000)" = 2 ] || fail "$tr: WAIT 2 5000"
	want=$(in_cli python3 "$TOOL" digest "$HOST" 6379)
	sleep 2 # a few sentinel hellos through paste-kv's PUBLISH/SUBSCRIBE
	grep -q '^paste-kv: ' "$ECHO_LOG" || fail "$tr: paste-kv log empty"

	log "$tr: kill -9 of paste-kv; the sentinel must promote a replica"
	kill -KILL "$ECHO_PID"
	wait "$ECHO_PID" 2>/dev/null || true
	untrack_pid "$ECHO_PID"
	t0=$SECONDS
	for ((i = 0; i < 600; i++)); do
		read -r ip port < <(scli SENTINEL get-master-addr-by-name pk | tr '\n' ' ') || true
		if [ "$ip" = "$CLI_IP" ] && [[ "$port" == 638[01] ]] &&
			in_cli redis-cli -h "$ip" -p "$port" ROLE 2>/dev/null | head -1 | grep -q master; then
			break
		fi
		sleep 0.1
	done
	[ "$ip" = "$CLI_IP" ] && [[ "$port" == 638[01] ]] ||
		fail "$tr: the sentinel gives '$ip $port' as the primary after 60 s"
	wait_for "$LOGDIR/sentinel.$tr.log" '+switch-master pk' "$tr: sentinel"
	log "$tr: after $((SECONDS - t0)) s the sentinel names $ip:$port, a primary"
	got=$(in_cli python3 "$TOOL" digest "$ip" "$port")
	[ "$got" = "$want" ] || fail "$tr: the new primary holds '$got', paste-kv held '$want'"
	log "$tr: it holds what paste-kv held: $got"
	[ "$(in_cli redis-cli -h "$ip" -p "$port" SET after-failover yes)" = OK ] ||
		fail "$tr: the new primary refuses writes"
	for p in "${PIDS[@]}"; do
		kill_pid "$p"
		untrack_pid "$p"
	done
	PIDS=()
done
