# SPDX-License-Identifier: BSD-2-Clause
# tests/integration/wal_lib.sh - paste-wal helpers of the WAL integration tests (sourced after
# lib.sh). Sourcing it sets what every WAL test uses (a test may change any of them afterwards):
#
#	HERE        this directory (tests/integration)
#	CLIENT_PY   wal_client.py, the test client
#	WAL, DUMP   paste-wal and paste-wal-dump of PASTE_BUILD (checked: built)
#	PORT        8080, the server's port
#	ACKS        $LOGDIR/acks, the load client's ack file
#	SEED        the payload seed: what the test set before sourcing, else PASTE_CRASH_SEED, else
#	            random; RANDOM is seeded with it, so kill times follow it too (the test prints it)
#
# and fails unless python3 is installed. The helpers:
#
#	start_wal ARGS...      paste-wal in the server namespace; waits for its ready line (READY),
#	                       WAL_PID and WAL_LOG name it
#	stop_wal               SIGTERM to it; fails unless it exits with status 0 (which includes the
#	                       server's own frame accounting check)
#	field LINE KEY         the value of KEY in a "k=v ..." line or a flat JSON object
#	nacks FILE, max_acked FILE, acked_bytes FILE   of a wal_client.py ack file
#	check_server_log       fail on an error from the library or the server in WAL_LOG
#	dump_verify TAG ACKS [ARGS]  paste-wal-dump --verify --raw of POOL (plus ARGS) against the
#	                       acks (through dump_stream: the dump and the check at once)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIENT_PY=$HERE/wal_client.py
WAL=$PASTE_BUILD/paste-wal
DUMP=$PASTE_BUILD/paste-wal-dump
PORT=8080
ACKS=$LOGDIR/acks
SEED=${SEED:-${PASTE_CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}}
RANDOM=$SEED
for f in "$WAL" "$DUMP"; do
	[ -x "$f" ] || fail "$f not built (cmake --build $PASTE_BUILD)"
done
command -v python3 >/dev/null || fail "python3 not installed (scripts/deps installs it)"

WAL_PID=
WAL_LOG=
WAL_N=0

start_wal() {
	WAL_N=$((WAL_N + 1))
	WAL_LOG=$LOGDIR/wal.$WAL_N.log
	log "start: paste-wal $*"
	need_testbed
	ECHO_LOG=$WAL_LOG # fail() shows this log
	start_ready paste-wal "$WAL_LOG" ip netns exec "$NS_SRV" "$WAL" "$@"
	WAL_PID=$READY_PID
	ECHO_PID=$WAL_PID
}

stop_wal() {
	local rc=0
	kill -TERM "$WAL_PID"
	wait "$WAL_PID" || rc=$?
	untrack_pid "$WAL_PID"
	ECHO_PID=
	[ $rc -eq 0 ] || { tail -n 5 "$WAL_LOG" >&2; fail "paste-wal exited with status $rc after SIGTERM"; }
}

field() {
	local v
	v=$(printf '%s\n' "$1" | tr ' ,{}' '\n\n\n\n' | sed -n "s/^\"\{0,1\}$2\"\{0,1\}[=:]//p" | head -n 1)
	[ -n "$v" ] || fail "no field '$2' in: $1"
	printf '%s\n' "$v"
}

nacks() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
max_acked() { if [ -s "$1" ]; then awk 'BEGIN{m=0} $1>m{m=$1} END{print m}' "$1"; else echo 0; fi; }
acked_bytes() { if [ -s "$1" ]; then awk '{b+=$4} END{print b+0}' "$1"; else echo 0; fi; }

# No error from the library or the server in the current log (the recovery notes, the supervisor's
# lines and retention's notes excepted).
check_server_log() {
	local bad
	bad=$(grep -E '^(libpaste-xdp: error:|paste-wal: )' "$WAL_LOG" | grep -vE '^paste-wal: (ready|supervisor|retention: dropped)' |
		grep -v 'cutting a torn tail' || true)
	[ -z "$bad" ] || { printf '%s\n' "$bad" | head -n 10 >&2; fail "errors in $WAL_LOG"; }
}

# dump_stream TAG LISTING VLOG ACKS SEED [VERIFY_ARGS...] -- DUMP_ARGS...: paste-wal-dump DUMP_ARGS
# --raw (its listing and messages in LISTING) and wal_client.py verify-dump VERIFY_ARGS of its
# payloads against the ack file ACKS (output in VLOG), both at once: the payloads go through a FIFO,
# never to disk, and the dump and the check each take a CPU. Fails the test (messages start with
# TAG) if the dump failed or the check found an acknowledged record lost or changed.
dump_stream() {
	local tag=$1 listing=$2 vlog=$3 acks=$4 seed=$5 fifo=$2.raw.fifo vargs=() dpid vrc=0 drc=0
	shift 5
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		vargs+=("$1")
		shift
	done
	shift
	rm -f "$fifo"
	mkfifo "$fifo"
	: >"$listing" # there before verify-dump opens it
	"$DUMP" "$@" --raw 2>"$listing" >"$fifo" &
	dpid=$!
	track_pid $dpid
	python3 "$CLIENT_PY" verify-dump --follow --listing "$listing" --raw "$fifo" --ack-file "$acks" \
		--seed "$seed" "${vargs[@]+"${vargs[@]}"}" >"$vlog" 2>&1 || vrc=$?
	# If verify-dump ended before it opened the FIFO, the dump still waits in open(): a reader
	# that comes and goes lets it go on (and end, on the closed pipe).
	[ $vrc -eq 0 ] || : <>"$fifo"
	wait $dpid || drc=$?
	untrack_pid $dpid
	rm -f "$fifo"
	# 141 (SIGPIPE): the check ended first and closed the FIFO; the check's failure is the news
	if [ $drc -ne 0 ] && ! { [ $vrc -ne 0 ] && [ $drc -eq 141 ]; }; then
		tail -n 20 "$listing" >&2
		fail "$tag: paste-wal-dump $* failed (status $drc)"
	fi
	[ $vrc -eq 0 ] || { cat "$vlog" >&2; fail "$tag: acknowledged records lost or changed in the dump"; }
}

# dump_verify TAG ACKS [ARGS...]: paste-wal-dump --raw of the (unlocked) pool against the acks.
dump_verify() {
	local tag=$1 acks=$2 listing=$LOGDIR/dump.$1.txt sum
	shift 2
	dump_stream "$tag" "$listing" "$LOGDIR/vdump.$tag.log" "$acks" "$SEED" --strict -- --pool "$POOL" "$@" --verify
	# A process crash cannot tear a record (its seq is stored last): recovery cuts nothing.
	grep -q '^paste-wal-dump: .* dropped=0 ' "$listing" ||
		{ tail -n 3 "$listing" >&2; fail "$tag: recovery after kill -9 cut records"; }
	sum=$(tail -n 1 "$LOGDIR/vdump.$tag.log")
	log "$tag: $(grep '^paste-wal-dump:' "$listing" | tr ' ' '\n' | grep -E '^(first|next|records|tier_records|tier_listed|problems)=' | tr '\n' ' ')$sum"
}
