#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Failover round trips of a paste-kv primary by redis-sentinel (quorum 1, in the client namespace).
# paste transport: paste-kv with two redis-server replicas; kernel transport: paste-kv with a
# paste-kv replica (kernel sockets, same namespace) and a redis-server replica of priority 0, so
# the sentinel must promote the paste-kv replica (MULTI, REPLICAOF NO ONE, CONFIG REWRITE, CLIENT
# KILL TYPE normal / pubsub, EXEC). The sentinel finds the replicas through paste-kv's INFO
# replication and talks to it (CLIENT SETNAME, PING, INFO, PUBLISH and SUBSCRIBE on
# __sentinel__:hello); paste-kv is killed with SIGKILL; a client that asks the sentinel
# (SENTINEL get-master-addr-by-name) finds a new primary that holds exactly the data paste-kv
# held (same keys, contents and expiry times: kv_repl_tool.py digest) and takes writes. Then the
# old primary restarts on its pool, takes a write as the primary it believes it is (split brain),
# and the sentinel turns it into a replica of the new primary (the same MULTI block with SLAVEOF
# host port): it must drop that write (a full resync), hold the new primary's data and follow
# its writes. About 25 s per transport (the sentinel checks a restarted replica every 10 s); the
# transports run at the same time.
# Skipped (77) without redis-server or redis-sentinel.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"
. "$(dirname "$0")/kv_repl_lib.sh" # wait_for, kv_transport

for p in redis-server redis-sentinel; do
	command -v $p >/dev/null || { log "$p not installed: skipped"; exit 77; }
done
TOOL=$PASTE_SRC/tests/integration/kv_repl_tool.py

# The transports run at the same time, each with its own ports, pool files, logs and sentinel
# (most of a round is waiting for the sentinel's timers: its down-after, and the 10 s between its
# checks of a restarted primary), in a subshell each: fail there ends that subshell, whose EXIT trap
# stops what it started, and the test fails with it.
PIDS=()
start_bg() { # LOG CMD...: in the client namespace
	local logf=$1
	shift
	ip netns exec "$NS_CLI" "$@" >"$logf" 2>&1 &
	track_pid $!
	PIDS+=($!)
}

scli() { in_cli redis-cli -h "$CLI_IP" -p "$SPORT" "$@"; }

# kv_role PORT: "role master-host master-port link-state" of paste-kv on HOST:PORT, one line
kv_role() { in_cli redis-cli -h "$HOST" -p "$1" ROLE 2>/dev/null | head -4 | tr '\n' ' '; }

# one_transport TR N: the whole round trip on transport TR; N (0, 1, ...) picks its ports (sentinel
# 26379 + N, redis-server replicas 6380 + 3N, 6381 + 3N, a paste-kv replica 6382 + 3N) and its
# paste-kv log numbers (kv.(100N + i).log); its pool files are paste-test-PID-TR[-r].pool.
one_transport() {
	local tr=$1 n=$2 pool=/dev/shm/paste-test-$$-$1.pool p_pid p_log r_log rports new found port conf want got ip i t0
	local rp0=$((6380 + 3 * n)) rp1=$((6381 + 3 * n)) kvr=$((6382 + 3 * n))
	SPORT=$((26379 + n))
	ECHO_N=$((100 * n))
	kv_transport "$tr"
	rm -f "$pool" "${pool%.pool}-r.pool"
	start_kv "${KV_ARGS[@]}" --port 6379 --pool "$pool" --pool-size 512M
	p_pid=$ECHO_PID p_log=$ECHO_LOG
	in_cli python3 "$TOOL" fill "$HOST" 6379 "$tr" || fail "$tr: fill"
	# CLIENT KILL as Sentinel sends it (TYPE normal / pubsub; SKIPME yes by default), and ID
	in_cli python3 - "$HOST" <<-'EOF' || fail "$tr: CLIENT KILL"
	import socket, sys
	def conn():
	    return socket.create_connection((sys.argv[1], 6379), 10)
	def cmd(s, *a):
	    s.sendall(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a))
	    return s.recv(4096)
	def gone(s):
	    try:
	        return s.recv(4096) == b""
	    except ConnectionResetError:
	        return True
	sub, idle, me = conn(), conn(), conn()
	assert cmd(sub, b"SUBSCRIBE", b"ch").startswith(b"*3"), "SUBSCRIBE"
	assert cmd(idle, b"PING") == b"+PONG\r\n", "PING"
	r = cmd(me, b"CLIENT", b"KILL", b"TYPE", b"pubsub")
	assert r == b":1\r\n" and gone(sub), "TYPE pubsub: %r" % r
	r = cmd(me, b"CLIENT", b"KILL", b"TYPE", b"normal")
	assert r == b":1\r\n" and gone(idle), "TYPE normal: %r" % r
	assert cmd(me, b"PING") == b"+PONG\r\n", "SKIPME yes: the caller survives"
	r = cmd(me, b"CLIENT", b"KILL", b"TYPE", b"bogus")
	assert r.startswith(b"-ERR Unknown client type"), r
	myid = cmd(me, b"CLIENT", b"ID")[1:-2]
	r = cmd(me, b"CLIENT", b"KILL", b"ID", myid, b"SKIPME", b"no")
	assert r == b":1\r\n" and gone(me), "ID SKIPME no: %r" % r
	EOF
	if [ "$tr" = paste ]; then
		rports=($rp0 $rp1) new="$CLI_IP:$rp0 $CLI_IP:$rp1" found=("$CLI_IP:$rp0" "$CLI_IP:$rp1")
	else # a paste-kv replica; the redis-server replica is never promoted (priority 0)
		start_kv "${KV_ARGS[@]}" --port $kvr --pool "${pool%.pool}-r.pool" --pool-size 512M \
			--replicaof "$HOST:6379"
		r_log=$ECHO_LOG
		PIDS+=("$ECHO_PID")
		ECHO_PID=$p_pid ECHO_LOG=$p_log
		wait_for "$r_log" 'replica: loaded' "paste-kv replica"
		rports=($rp0) new="$HOST:$kvr" found=("$CLI_IP:$rp0" "$HOST:$kvr")
	fi
	for port in "${rports[@]}"; do
		mkdir -p "$LOGDIR/$tr.$port"
		start_bg "$LOGDIR/replica.$tr.$port.log" redis-server --port $port --bind "$CLI_IP" \
			--protected-mode no --save '' --appendonly no --dir "$LOGDIR/$tr.$port" \
			--replicaof "$HOST" 6379 $([ "$tr" = paste ] || echo --replica-priority 0)
		wait_for "$LOGDIR/replica.$tr.$port.log" 'sync: Finished with success' "replica $port"
	done
	conf=$LOGDIR/sentinel.$tr.conf
	printf '%s\n' "port $SPORT" "bind $CLI_IP" "protected-mode no" "dir $LOGDIR" \
		"sentinel monitor pk $HOST 6379 1" "sentinel down-after-milliseconds pk 2000" \
		"sentinel failover-timeout pk 10000" >"$conf"
	start_bg "$LOGDIR/sentinel.$tr.log" redis-sentinel "$conf"
	for a in "${found[@]}"; do
		wait_for "$LOGDIR/sentinel.$tr.log" "+slave slave $a" "sentinel: replica $a found"
	done
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
		if [[ " $new " == *" $ip:$port "* ]] &&
			in_cli redis-cli -h "$ip" -p "$port" ROLE 2>/dev/null | head -1 | grep -q master; then
			break
		fi
		sleep 0.1
	done
	[[ " $new " == *" $ip:$port "* ]] || fail "$tr: the sentinel gives '$ip $port' as the primary after 60 s"
	wait_for "$LOGDIR/sentinel.$tr.log" '+switch-master pk' "$tr: sentinel"
	log "$tr: after $((SECONDS - t0)) s the sentinel names $ip:$port, a primary"
	got=$(in_cli python3 "$TOOL" digest "$ip" "$port")
	[ "$got" = "$want" ] || fail "$tr: the new primary holds '$got', paste-kv held '$want'"
	log "$tr: it holds what paste-kv held: $got"
	[ "$(in_cli redis-cli -h "$ip" -p "$port" SET after-failover yes)" = OK ] ||
		fail "$tr: the new primary refuses writes"

	log "$tr: the old primary restarts; the sentinel must make it a replica of $ip:$port"
	start_kv "${KV_ARGS[@]}" --port 6379 --pool "$pool" --pool-size 512M
	[ "$(in_cli redis-cli -h "$HOST" -p 6379 SET split-brain lost)" = OK ] ||
		fail "$tr: the restarted primary refuses a write before the sentinel reconfigures it"
	t0=$SECONDS
	for ((i = 0; i < 600; i++)); do
		[ "$(kv_role 6379)" = "slave $ip $port connected " ] &&
			[ "$(in_cli redis-cli -h "$HOST" -p 6379 GET after-failover)" = yes ] && break
		sleep 0.1
	done
	[ "$(kv_role 6379)" = "slave $ip $port connected " ] ||
		fail "$tr: the old primary's ROLE is '$(kv_role 6379)' 60 s after its restart"
	grep -q "+convert-to-slave slave $HOST:6379" "$LOGDIR/sentinel.$tr.log" ||
		fail "$tr: the sentinel did not reconfigure the old primary"
	log "$tr: after $((SECONDS - t0)) s it is a replica of $ip:$port"
	[ "$(in_cli redis-cli -h "$HOST" -p 6379 EXISTS split-brain)" = 0 ] ||
		fail "$tr: the old primary kept the write the new primary never had"
	in_cli redis-cli -h "$ip" -p "$port" SET after-rejoin yes >/dev/null
	for ((i = 0; i < 100; i++)); do
		[ "$(in_cli redis-cli -h "$HOST" -p 6379 GET after-rejoin)" = yes ] && break
		sleep 0.1
	done
	got=$(in_cli python3 "$TOOL" digest "$HOST" 6379)
	want=$(in_cli python3 "$TOOL" digest "$ip" "$port")
	[ "$got" = "$want" ] || fail "$tr: the old primary holds '$got', the new one '$want'"
	[ "$(in_cli redis-cli -h "$HOST" -p 6379 SET x y)" = "READONLY You can't write against a read only replica." ] ||
		fail "$tr: the old primary, now a replica, takes a client's write"
	log "$tr: it dropped its own write and holds the new primary's data: $got"
	kill_pid "$ECHO_PID"
	untrack_pid "$ECHO_PID"
	for p in "${PIDS[@]}"; do
		kill_pid "$p"
		untrack_pid "$p"
	done
	PIDS=()
}

TRS=(${KV_TEST_TRANSPORTS:-paste kernel})
for tr in "${TRS[@]}"; do
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$tr.pool" "/dev/shm/paste-test-$$-$tr-r.pool")
done
in_parallel one_transport "${TRS[@]}"
