# SPDX-License-Identifier: BSD-2-Clause
# mq_wal_lib.sh - what the paste-wal --queues tests share. A test sources only this file (after
# `export PASTE_QUEUES=2`): it sources lib.sh, brings the testbed up and sources wal_lib.sh and
# mq_lib.sh, whose defaults it uses (WAL, CLIENT_PY, SEED, ACKS, PORT); the test then sets HOST
# and the server's options SRV.
#
#	start_sup [ARGS...]    paste-wal --queues 2 SRV ARGS (mq_lib.sh: SUP_PID, W0, W1; WAL_LOG)
#	load SECONDS BASE [ARGS]  wal_client.py's ack-recording load from 16 connections in the
#	                       background (LOAD_PID; its log load.BASE.log); load_wait waits for it
#	check_all TAG          every ack by GET on fresh connections (10 each, so either worker) and,
#	                       at the same time, by range reads, byte for byte
#	stats                  GET /stats (from whichever worker the connection lands on)
#	worker_field JSON K NAME  NAME of worker K in the "workers" array of /stats
#	spread_load MAX        load 3 0 --no-errors --max-requests MAX (16 connections): at least 100
#	                       acks, of both workers, and each worker's "appended" in /stats (js)
#	                       equal to its acks (n: acks, odd: worker 0's)
#	worker0_restarted      after a kill -9 of worker 0: the supervisor restarted it and every
#	                       ack reads back (check_all worker-kill)
#	after_acks BEFORE N    wait until the ack file holds N acks more than BEFORE
#	both_workers           /stats (into js) once it reports both workers (each maps its peer
#	                       lazily, so one taken right after the start may show {"up":false})

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
testbed_up
. "$(dirname "${BASH_SOURCE[0]}")/wal_lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/mq_lib.sh"

start_sup() {
	sup_start "$WAL" paste-wal --queues 2 "${SRV[@]}" "$@"
	WAL_LOG=$SUP_LOG
}

load() {
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" load --host "$HOST" --port $PORT --conns 16 \
		--depth 4 --duration "$1" --stall 3 --grace 5 --max-size 32768 --seed "$SEED" \
		--conn-base "$2" --ack-file "$ACKS" "${@:3}" >"$LOGDIR/load.$2.log" 2>&1 &
	LOAD_PID=$!
	track_pid "$LOAD_PID"
}

load_wait() {
	local rc=0
	wait "$LOAD_PID" || rc=$?
	untrack_pid "$LOAD_PID"
	return $rc
}

check_all() {
	local gpid grc=0 vrc=0
	# The two readers at the same time (both read only; each keeps a CPU busy)
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" getall --host "$HOST" --port $PORT \
		--seed "$SEED" --ack-file "$ACKS" --per-conn 10 >"$LOGDIR/getall.$1.log" 2>&1 &
	gpid=$!
	track_pid $gpid
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" verify --host "$HOST" --port $PORT --sparse \
		--strict --seed "$SEED" --ack-file "$ACKS" --batch 500 >"$LOGDIR/verify.$1.log" 2>&1 || vrc=$?
	wait $gpid || grc=$?
	untrack_pid $gpid
	[ $grc = 0 ] || { tail -n 20 "$LOGDIR/getall.$1.log" >&2; fail "$1: acknowledged records not readable by GET"; }
	log "$1: $(tail -n 1 "$LOGDIR/getall.$1.log")"
	[ $vrc = 0 ] || { tail -n 20 "$LOGDIR/verify.$1.log" >&2; fail "$1: range reads lost or changed records"; }
	log "$1: $(tail -n 1 "$LOGDIR/verify.$1.log")"
}

stats() { ip netns exec "$NS_CLI" curl -s --max-time 10 "http://$HOST:$PORT/stats"; }

worker_field() {
	printf '%s\n' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workers"][int(sys.argv[1])][sys.argv[2]])' "$2" "$3"
}

both_workers() {
	local i
	for ((i = 0; i < 50; i++)); do
		js=$(stats)
		worker_field "$js" 0 appended >/dev/null 2>&1 && worker_field "$js" 1 appended >/dev/null 2>&1 &&
			return 0
		sleep 0.1
	done
	fail "/stats does not report both workers: $js"
}

spread_load() {
	local a0 a1
	load 3 0 --no-errors --max-requests "$1"
	load_wait || { tail -n 5 "$LOGDIR/load.0.log" >&2; fail "load with no errors failed"; }
	n=$(nacks "$ACKS")
	odd=$(awk '$1 % 2 == 1' "$ACKS" | wc -l)
	log "acknowledged $n records: $odd of worker 0, $((n - odd)) of worker 1"
	[ "$n" -gt 100 ] || fail "only $n records acknowledged"
	[ "$odd" -gt 0 ] && [ "$((n - odd))" -gt 0 ] || fail "POSTs did not reach both workers"
	both_workers
	a0=$(worker_field "$js" 0 appended) a1=$(worker_field "$js" 1 appended)
	log "/stats: worker 0 appended=$a0, worker 1 appended=$a1, total_appended=$(field "$js" total_appended)"
	[ "$a0" = "$odd" ] && [ "$a1" = "$((n - odd))" ] ||
		fail "per-worker counters ($a0, $a1) do not match the acks ($odd, $((n - odd)))"
}

# worker0_restarted: the supervisor restarted worker 0 after its kill -9 (within 30 s), and every
# acknowledged record still reads back (check_all worker-kill).
worker0_restarted() {
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q 'worker 0 ready again' "$WAL_LOG" && break
		sleep 0.1
	done
	grep -q 'worker 0 ready again' "$WAL_LOG" || fail "worker 0 was not restarted"
	log "after kill -9 of worker 0: $(nacks "$ACKS") acknowledged in all"
	check_all worker-kill
}

# after_acks BEFORE N: wait (20 s at most) until the ack file holds N acks more than BEFORE, so a
# kill lands under load however fast the machine is (a fixed sleep let a quiet machine finish
# 16,000 POSTs before it).
after_acks() {
	local i
	for ((i = 0; i < 200; i++)); do
		(($(nacks "$ACKS") >= $1 + $2)) && return 0
		sleep 0.1
	done
	fail "the load got fewer than $2 acks in 20 s"
}
