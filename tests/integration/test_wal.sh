#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-wal with real clients, in each of its three modes: paste transport (dedicated IP, records
# kept in place in the pool), kernel transport (epoll sockets, recv into pool frames, same log),
# io_uring transport (the same kernel TCP through io_uring, multishot recv into pool frames), and
# kernel transport with --sync fdatasync (records appended to an ordinary file). Per mode:
#  - curl: POST (small and 1 MiB bodies), GET a record byte for byte, 413 past --max-body, HEAD,
#    a range GET, DELETE ?upto=, /stats as JSON;
#  - a pipelining client: 200 POSTs then 200 GETs, each burst in one write, replies in order;
#  - bad input (malformed request lines, huge heads, bad Content-Length, chunked, a slowloris
#    trickle cut by --header-timeout, a reset mid-body, Expect: 100-continue) while a load client
#    keeps posting: every bad request gets its status, the load client gets nothing but 201s, and
#    afterwards every record read back is byte-identical to what was sent (no record corrupted);
#  - wrk with a Lua POST script, 1280-byte bodies, 2 s: zero socket errors, zero non-201;
#  - SIGTERM: exit 0 (which includes the server's own frame accounting check), then
#    paste-wal-dump --verify on the pool, and its --raw output checked against the acks; in
#    fdatasync mode a restart recovers the file and the log is read back again.
#
# Environment: PASTE_WAL_MODES (default "paste kernel io_uring fdatasync"), PASTE_WAL_WRK_SECS (default
# 2), plus lib.sh's. Needs curl, wrk and python3 (scripts/deps).
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/wal_lib.sh"

MODES=${PASTE_WAL_MODES:-paste kernel io_uring fdatasync}
WRK_SECS=${PASTE_WAL_WRK_SECS:-2}
LUA=$HERE/wal_post.lua
LOGFILE=/dev/shm/paste-test-$$-wal.log # the fdatasync log file (tmpfs: fdatasync is cheap here)
BIG=$LOGDIR/big.bin
CLEANUP_FILES+=("$LOGFILE")
for t in curl wrk; do
	command -v $t >/dev/null || fail "$t not installed (scripts/deps installs it)"
done

# stop_log_stats: stop_wal (SIGTERM, exit status 0), then log the server's last stats line.
stop_log_stats() {
	stop_wal
	log "$(grep '^stats ' "$WAL_LOG" | tail -n 1 | cut -c1-400)"
}

# jfields JSON NAME...: "NAME=value ..." out of /stats, one python3 for them all; fails unless
# JSON is a JSON object with every NAME.
jfields() {
	printf '%s' "$1" | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(" ".join("%s=%s" % (k, d[k]) for k in sys.argv[1:]))' "${@:2}"
}

wal_py() { in_cli python3 "$CLIENT_PY" "$@"; }

# ---- the checks, per mode ----------------------------------------------------------------

curl_checks() {
	local url=$1 out=$LOGDIR/curl.out code seq1 seq2 stats sum
	# POST a small body, read it back.
	code=$(in_cli curl -sS -o "$out" -w '%{http_code}' --data-binary 'hello, log' "$url/log") ||
		fail "curl POST failed"
	[ "$code" = 201 ] || fail "POST answered $code: $(cat "$out")"
	seq1=$(python3 -c "import json,sys; print(json.load(open('$out'))['seq'])")
	[ "$(in_cli curl -sS "$url/log/$seq1")" = 'hello, log' ] || fail "GET /log/$seq1: wrong bytes"
	# A 1 MiB body (spans ~725 segments, kept piece by piece), byte for byte.
	code=$(in_cli curl -sS -o "$out" -w '%{http_code}' --data-binary @"$BIG" "$url/log")
	[ "$code" = 201 ] || fail "POST of 1 MiB answered $code: $(cat "$out")"
	seq2=$(python3 -c "import json,sys; print(json.load(open('$out'))['seq'])")
	[ "$seq2" -gt "$seq1" ] || fail "seq $seq2 after $seq1"
	in_cli curl -sS -o "$out" "$url/log/$seq2"
	cmp -s "$out" "$BIG" || fail "GET /log/$seq2: the 1 MiB record differs"
	# One byte past --max-body: 413, and the server goes on.
	head -c 1 /dev/zero | cat "$BIG" - >"$LOGDIR/toobig.bin"
	code=$(in_cli curl -sS -o "$out" -w '%{http_code}' --data-binary @"$LOGDIR/toobig.bin" "$url/log")
	[ "$code" = 413 ] || fail "POST of 1 MiB + 1 answered $code, want 413"
	code=$(in_cli curl -sS -o /dev/null -w '%{http_code}' -I "$url/log/$seq2")
	[ "$code" = 200 ] || fail "HEAD answered $code"
	code=$(in_cli curl -sS -o /dev/null -w '%{http_code}' "$url/log/999999999")
	[ "$code" = 404 ] || fail "GET of a missing record answered $code"
	# A range: both records, framed "seq len\n" + bytes + "\n".
	in_cli curl -sS -D "$LOGDIR/range.hdr" -o "$out" "$url/log?from=$seq1&limit=2"
	grep -qi '^X-Records: 2' "$LOGDIR/range.hdr" || fail "range: $(cat "$LOGDIR/range.hdr")"
	[ "$(stat -c %s "$out")" -eq $((${#seq1} + 4 + 10 + ${#seq2} + 9 + 1048576 + 2)) ] ||
		fail "range body has $(stat -c %s "$out") bytes"
	# Truncate the first; it is gone, the second stays.
	code=$(in_cli curl -sS -o "$out" -w '%{http_code}' -X DELETE "$url/log?upto=$seq1")
	[ "$code" = 200 ] || fail "DELETE answered $code"
	code=$(in_cli curl -sS -o /dev/null -w '%{http_code}' "$url/log/$seq1")
	[ "$code" = 404 ] || fail "record $seq1 still there after DELETE ?upto=$seq1 ($code)"
	code=$(in_cli curl -sS -o /dev/null -w '%{http_code}' "$url/log/$seq2")
	[ "$code" = 200 ] || fail "record $seq2 gone after DELETE ?upto=$seq1 ($code)"
	stats=$(in_cli curl -sS "$url/stats")
	sum=$(jfields "$stats" first_seq records bytes frames_free frames_kept fences batches avg_batch transport) ||
		fail "/stats is not JSON or lacks a field: $stats"
	[ "$(field "$sum" first_seq)" = "$seq2" ] || fail "stats after DELETE: $stats"
	log "curl: POST/GET (11 B, 1 MiB), 413, HEAD, 404, range, DELETE, /stats ok"
}

# wrk_run URL: WRK_SECS of 1280-byte POSTs; zero errors and zero non-201 replies.
wrk_run() {
	local url=$1 out=$LOGDIR/wrk.$MODE.log sum
	in_cli wrk -t2 -c32 -d"${WRK_SECS}s" --timeout 5s -s "$LUA" "$url/log" >"$out" 2>&1 ||
		{ cat "$out" >&2; fail "wrk failed"; }
	sum=$(grep '^wal_post:' "$out" || true)
	[ -n "$sum" ] || { cat "$out" >&2; fail "wrk printed no summary"; }
	log "wrk ($MODE): $(grep -E 'Requests/sec' "$out") $sum"
	! grep -q 'Non-2xx' "$out" || fail "wrk saw non-2xx replies: $(grep Non-2xx "$out")"
	for k in other errors_connect errors_read errors_write errors_status errors_timeout; do
		[ "$(field "$sum" $k)" = 0 ] || fail "wrk: $k=$(field "$sum" $k)"
	done
	[ "$(field "$sum" created)" = "$(field "$sum" requests)" ] && [ "$(field "$sum" created)" -gt 0 ] ||
		fail "wrk: not every request was created: $sum"
}

run_mode() {
	local url srv acks=$LOGDIR/acks.$MODE sum records next
	local base=(--port 8080 --header-timeout 2)
	rm -f "$acks"
	case $MODE in
	paste)
		url=http://$STACK_IP:8080
		srv=(--ifname "$VETH_SRV" --ip "$STACK_IP" --pool "$POOL" --pool-size 4G "${base[@]}")
		;;
	kernel | io_uring)
		url=http://$SRV_IP:8080
		srv=(--transport "$MODE" --ip "$SRV_IP" --pool "$POOL" --pool-size 4G "${base[@]}")
		;;
	fdatasync)
		url=http://$SRV_IP:8080
		srv=(--transport kernel --ip "$SRV_IP" --pool "$POOL" --pool-size 256M --sync fdatasync
			--log-file "$LOGFILE" "${base[@]}")
		;;
	*) fail "unknown mode '$MODE'" ;;
	esac
	rm -f "$POOL" "$LOGFILE"
	start_wal "${srv[@]}"
	[ "$(field "$READY" transport)" = "${MODE/fdatasync/kernel}" ] || fail "ready line: $READY"
	curl_checks "$url"
	local host=${url#http://}
	host=${host%:8080}
	sum=$(wal_py pipeline --host "$host" --port 8080 --n 200 --seed 3 | tail -n 1) ||
		fail "pipelining client failed"
	log "$sum"
	# Server-side TIME-WAIT: with 64 client ports, 300 "Connection: close" connections reuse
	# every port while the server still holds the old 4-tuple; all must connect at once.
	local range
	range=$(in_cli sysctl -n net.ipv4.ip_local_port_range | tr -s '\t ' ' ')
	in_cli sysctl -qw net.ipv4.ip_local_port_range="40000 40063"
	sum=$(wal_py reconnect --host "$host" --port 8080 --n 300 --timeout 2 | tail -n 1) ||
		{ in_cli sysctl -qw net.ipv4.ip_local_port_range="$range"; fail "reconnect after server close failed"; }
	in_cli sysctl -qw net.ipv4.ip_local_port_range="$range"
	log "$sum"
	# Bad input beside a load client that must see nothing but 201s: the load runs from before the
	# first bad request until the last one is answered (the stop file; 60 s at most), so it spans
	# the bad input however long that takes, and its records are all read back below.
	local stop=$LOGDIR/load.$MODE.stop
	rm -f "$stop"
	ip netns exec "$NS_CLI" python3 "$CLIENT_PY" load --host "$host" --port 8080 --ack-file "$acks" \
		--duration 60 --stop-file "$stop" --conns 4 --seed 5 --no-errors >"$LOGDIR/load.$MODE.log" 2>&1 &
	local lpid=$! i
	track_pid $lpid
	for ((i = 0; i < 100 && $(nacks "$acks") == 0; i++)); do sleep 0.1; done # the load is under way
	wal_py badinput --host "$host" --port 8080 --header-timeout 2 --seed 5 >"$LOGDIR/bad.$MODE.log" 2>&1 ||
		{ cat "$LOGDIR/bad.$MODE.log" >&2; fail "bad input checks failed"; }
	log "$(tail -n 1 "$LOGDIR/bad.$MODE.log")"
	touch "$stop"
	wait $lpid || { cat "$LOGDIR/load.$MODE.log" >&2; fail "the load client beside the bad input failed"; }
	untrack_pid $lpid
	log "$(tail -n 1 "$LOGDIR/load.$MODE.log")"
	check_read_back "$host" verify
	stop_log_stats
	records=$(field "$(grep '^stats ' "$WAL_LOG" | tail -n 1)" records)
	dump_check "$acks" "$records"
	# Restart: everything recovered, readable again; then truncate it all and run wrk.
	# --retain-bytes bounds the log during wrk: a fast machine fills the 4 GiB pool in
	# 10 s of closed-loop POSTs (CI once saw 52,917 507 replies at 186 k req/s), and wrk
	# checks the HTTP path, not capacity (test_wal_tier checks that).
	start_wal "${srv[@]}" --retain-bytes 1G
	[ "$(field "$READY" recovered)" = "$records" ] ||
		fail "restart recovered $(field "$READY" recovered) of $records records"
	check_read_back "$host" verify-after-restart
	next=$(field "$READY" next)
	in_cli curl -sS -f -o /dev/null -X DELETE "$url/log?upto=$((next - 1))" || fail "DELETE of all failed"
	[ "$(jfields "$(in_cli curl -sS "$url/stats")" records)" = records=0 ] || fail "records left after DELETE"
	wrk_run "$url"
	stats=$(in_cli curl -sS "$url/stats")
	log "stats: $(jfields "$stats" records fences fsyncs rounds batches avg_batch max_batch)"
	stop_log_stats # retention may drop more after the /stats above: compare with the final stats line
	dump_check "" "$(field "$(grep '^stats ' "$WAL_LOG" | tail -n 1)" records)"
}

# check_read_back HOST TAG: the whole log over HTTP: every acked record byte-identical, every
# record a payload of wal_client.py or a body curl_checks posted.
check_read_back() {
	wal_py verify --host "$1" --port 8080 --ack-file "$acks" --seed 5 >"$LOGDIR/$2.$MODE.log" 2>&1 ||
		{ cat "$LOGDIR/$2.$MODE.log" >&2; fail "$2: records read back differ"; }
	log "$2: $(tail -n 1 "$LOGDIR/$2.$MODE.log")"
}

# dump_check ACKS RECORDS: paste-wal-dump --verify on the stopped server's pool (--log-file on the
# log file in the fdatasync mode); with ACKS, its --raw output is checked record by record too.
dump_check() {
	local listing=$LOGDIR/dump.$MODE.txt vlog=$LOGDIR/vdump.$MODE.log sum src=(--pool "$POOL" --verify)
	[ "$MODE" != fdatasync ] || src=(--log-file "$LOGFILE") # the fdatasync store: the log file
	if [ -n "$1" ]; then # the dump and verify-dump of its --raw output at once (wal_lib.sh)
		dump_stream "$MODE" "$listing" "$vlog" "$1" 5 -- "${src[@]}"
	else
		"$DUMP" "${src[@]}" --quiet >"$listing" 2>&1 ||
			{ tail -n 20 "$listing" >&2; fail "paste-wal-dump ${src[*]} failed"; }
	fi
	sum=$(grep '^paste-wal-dump:' "$listing")
	log "$sum"
	[ "$(field "$sum" records)" = "$2" ] || fail "paste-wal-dump lists $(field "$sum" records) records, the server had $2"
	[ "$MODE" = fdatasync ] || [ "$(field "$sum" was_clean)" = 1 ] || fail "the pool is not marked clean after SIGTERM"
	[ "$MODE" != fdatasync ] || [ "$(field "$sum" torn_bytes)" = 0 ] || fail "a torn tail after SIGTERM: $sum"
	[ -z "$1" ] || log "$(tail -n 1 "$vlog")"
}

head -c 1048576 /dev/urandom >"$BIG"
for MODE in $MODES; do
	log "==== mode $MODE ===="
	run_mode
done
! xdp_attached || fail "an XDP program is still attached to $VETH_SRV after the last SIGTERM"
log "modes passed: $MODES"
