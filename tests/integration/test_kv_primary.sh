#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-kv as the primary of unmodified redis-server replicas, on the paste and kernel transports
# (paste-kv in the server namespace, the replicas in the client one):
# - keys of every kind written before a replica attaches (full resync: an RDB snapshot, written
#   4 KB per round while serving) and after
#   (the stream) read back from it byte-identical, with the same expiry times (kv_repl_tool.py
#   compare); WAIT 1 returns 1, WAIT 2 returns 2 with a second replica;
# - a third replica attaches while a client APPENDs, HSETs and INCRs 2,520 keys for 2 s: its
#   snapshot (keys written ahead of a change: copy-on-write) and the stream give it exactly the
#   primary's keys;
# - INFO replication and ROLE name the replicas;
# - a replica shut down and restarted resumes with a partial resync (+CONTINUE: its log says so,
#   the primary counts it) and has the writes made while it was down;
# - kill -9 of paste-kv under load (SETs, WAIT 2 after every 50): every write WAIT acknowledged
#   is on both replicas, and in the primary's pool after its restart; the replicas resynchronise.
# The transports run at the same time. Skipped (77) without redis-server.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"
. "$(dirname "$0")/kv_repl_lib.sh" # wait_for, kv_transport

command -v redis-server >/dev/null || { log "redis-server not installed: skipped"; exit 77; }
TOOL=$PASTE_SRC/tests/integration/kv_repl_tool.py

# start_replica NAME PORT: redis-server in the client namespace replicating paste-kv ($HOST),
# saving its data at shutdown (so that a restart can continue with PSYNC). repl-timeout 6: after
# kill -9 of paste-kv on the paste transport, the replica's link gets no RST; it notices the
# silence (the primary PINGs every 2 s) and reconnects.
declare -A RPID
RN=0
start_replica() {
	local name=$1 port=$2
	RN=$((RN + 1))
	RLOG=$LOGDIR/$name.$RN.log
	mkdir -p "$LOGDIR/$name.$TR.dir"
	ip netns exec "$NS_CLI" redis-server --port "$port" --bind "$CLI_IP" --protected-mode no --save '3600 1' \
		--repl-timeout 6 --appendonly no --dir "$LOGDIR/$name.$TR.dir" --replicaof "$HOST" 6379 >"$RLOG" 2>&1 &
	RPID[$name]=$!
	track_pid "${RPID[$name]}"
	wait_for "$RLOG" 'MASTER <-> REPLICA sync: Finished with success\|Successful partial resync' \
		"replica $name"
}

stop_replica() { # NAME PORT: SHUTDOWN (saves its data)
	in_cli redis-cli -h "$CLI_IP" -p "$2" SHUTDOWN >/dev/null 2>&1 || true
	wait "${RPID[$1]}" 2>/dev/null || true
	untrack_pid "${RPID[$1]}"
}

pcli() { in_cli redis-cli -h "$HOST" -p 6379 "$@"; }

# one_transport TR N: all of the above on transport TR; N (0, 1) picks the replicas' ports
# (6380 + 3N, 6381 + 3N, 6382 + 3N), the pool file (paste-test-PID-TR.pool) and the log numbers.
# The transports run at the same time (lib.sh in_parallel).
one_transport() {
	local tr=$1 TR=$1 POOL=/dev/shm/paste-test-$$-$1.pool pa=$((6380 + 3 * $2)) pb=$((6381 + 3 * $2))
	local pc=$((6382 + 3 * $2)) info want off role cpid cow acked lpid
	ECHO_N=$((100 * $2))
	RN=$((100 * $2))
	kv_transport "$tr"
	rm -rf "$POOL" "$LOGDIR"/ra.$tr.dir "$LOGDIR"/rb.$tr.dir "$LOGDIR"/rc.$tr.dir
	start_kv "${KV_ARGS[@]}" --port 6379 --pool "$POOL" --pool-size 512M --repl-backlog-size 4M --repl-snapshot-step 4K

	log "$tr: data before the replica attaches, full resync, then the stream"
	in_cli python3 "$TOOL" fill "$HOST" 6379 "$tr-before" || fail "$tr: fill before"
	start_replica ra $pa
	grep -q 'Full resync from master' "$RLOG" || fail "$tr: replica ra did not full-resync"
	in_cli python3 "$TOOL" fill "$HOST" 6379 "$tr-after" || fail "$tr: fill after"
	[ "$(pcli WAIT 1 5000)" = 1 ] || fail "$tr: WAIT 1 5000 did not return 1"
	in_cli python3 "$TOOL" compare "$HOST" 6379 "$CLI_IP" $pa || fail "$tr: replica ra differs"

	info=$(pcli INFO replication | tr -d '\r')
	for want in role:master connected_slaves:1 "slave0:ip=$CLI_IP,port=$pa,state=online" \
		repl_backlog_active:1 repl_backlog_size:4194304 paste_full_syncs:1; do
		grep -q "^$want" <<<"$info" || fail "$tr: INFO replication lacks '$want': $info"
	done
	off=$(sed -n 's/^master_repl_offset://p' <<<"$info")
	[ "$off" -gt 1000 ] || fail "$tr: master_repl_offset $off"
	role=$(pcli ROLE | tr '\n' ' ')
	[[ "$role" == "master "*" $CLI_IP $pa "* ]] || fail "$tr: ROLE replied '$role'"

	log "$tr: a second replica; WAIT 2"
	start_replica rb $pb
	pcli SET after-rb yes >/dev/null
	[ "$(pcli WAIT 2 5000)" = 2 ] || fail "$tr: WAIT 2 5000 did not return 2"
	in_cli python3 "$TOOL" compare "$HOST" 6379 "$CLI_IP" $pb || fail "$tr: replica rb differs"
	[ "$(pcli WAIT 3 300)" = 2 ] || fail "$tr: WAIT 3 300 (a replica too many) did not time out with 2"

	log "$tr: a third replica's snapshot written while a client changes keys (copy-on-write)"
	ip netns exec "$NS_CLI" python3 "$TOOL" churn "$HOST" 6379 2000 2 >"$LOGDIR/churn.$tr.txt" 2>&1 &
	cpid=$!
	track_pid "$cpid"
	wait_for "$LOGDIR/churn.$tr.txt" "keys made" "churn"
	start_replica rc $pc
	wait "$cpid" || fail "$tr: churn failed: $(cat "$LOGDIR/churn.$tr.txt")"
	untrack_pid "$cpid"
	[ "$(pcli WAIT 3 10000)" = 3 ] || fail "$tr: WAIT 3 10000 did not return 3"
	in_cli python3 "$TOOL" compare "$HOST" 6379 "$CLI_IP" $pc || fail "$tr: replica rc differs"
	cow=$(sed -n "s/.*replica $CLI_IP:$pc full resync.*(\([0-9]*\) keys written ahead.*/\1/p" "$ECHO_LOG")
	log "$tr: $(tail -1 "$LOGDIR/churn.$tr.txt"); ${cow:-?} keys written ahead of a change"
	[ "${cow:-0}" -gt 0 ] || fail "$tr: no key of rc's snapshot was written ahead of a change"
	stop_replica rc $pc

	log "$tr: replica ra restarted: partial resync"
	stop_replica ra $pa
	in_cli python3 "$TOOL" fill "$HOST" 6379 "$tr-while-down" || fail "$tr: fill while down"
	start_replica ra $pa
	grep -q 'Successful partial resynchronization' "$RLOG" ||
		fail "$tr: restarted replica ra did not continue: $(grep -i resync "$RLOG")"
	grep -q '^paste_partial_syncs_ok:1' <<<"$(pcli INFO replication)" ||
		fail "$tr: the primary did not count the partial resync"
	[ "$(pcli WAIT 2 5000)" = 2 ] || fail "$tr: WAIT 2 after the partial resync"
	in_cli python3 "$TOOL" compare "$HOST" 6379 "$CLI_IP" $pa || fail "$tr: replica ra differs after +CONTINUE"

	log "$tr: kill -9 of the primary under load: nothing WAIT acknowledged is lost"
	acked=$LOGDIR/acked.$tr
	rm -f "$acked"
	ip netns exec "$NS_CLI" python3 "$TOOL" load "$HOST" 6379 "$acked" 2 >"$LOGDIR/load.$tr.txt" 2>&1 &
	lpid=$!
	track_pid "$lpid"
	wait_for "$acked" . "load"
	sleep 1.$((RANDOM % 10))
	kill -KILL "$ECHO_PID"
	wait "$ECHO_PID" 2>/dev/null || true
	untrack_pid "$ECHO_PID"
	sleep 0.5
	# on the paste transport nothing resets the load's connection: stop it
	kill_pid "$lpid"
	untrack_pid "$lpid"
	grep -q FAIL "$LOGDIR/load.$tr.txt" && fail "$tr: load failed: $(cat "$LOGDIR/load.$tr.txt")"
	log "$tr: $(wc -l <"$acked") writes acknowledged by WAIT before the kill"
	in_cli python3 "$TOOL" check "$CLI_IP" $pa "$acked" || fail "$tr: replica ra lost acknowledged writes"
	in_cli python3 "$TOOL" check "$CLI_IP" $pb "$acked" || fail "$tr: replica rb lost acknowledged writes"
	start_kv "${KV_ARGS[@]}" --port 6379 --pool "$POOL" --pool-size 512M --repl-backlog-size 4M --repl-snapshot-step 4K
	in_cli python3 "$TOOL" check "$HOST" 6379 "$acked" || fail "$tr: the restarted primary lost acknowledged writes"
	[ "$(pcli WAIT 2 20000)" = 2 ] || fail "$tr: the replicas did not resynchronise with the restarted primary"
	in_cli python3 "$TOOL" compare "$HOST" 6379 "$CLI_IP" $pb || fail "$tr: replica rb differs after the primary's restart"

	stop_replica ra $pa
	stop_replica rb $pb
	stop_echo || fail "$tr: paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
}

TRS=(${KV_TEST_TRANSPORTS:-paste kernel})
for tr in "${TRS[@]}"; do
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$tr.pool")
done
in_parallel one_transport "${TRS[@]}"
