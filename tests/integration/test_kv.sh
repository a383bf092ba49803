#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-kv with real Redis clients, unchanged, on every transport (paste: XDP + AF_XDP + lwIP on the
# stack's own address; kernel and io_uring: kernel sockets on the server namespace's address), the
# three at the same time (ports 6379, 6380, 6381):
#  - redis-cli SET/GET/DEL/INFO, the Redis error replies, expiry;
#  - redis-cli --pipe mass insert of 100k keys (binary values, some empty), read back byte-identical;
#  - redis-benchmark -t set,get,incr,mset -d 1024 -c 50 -n 20000 with zero errors (and a pipelined
#    run), then the benchmark's values read back;
#  - malformed RESP and abrupt disconnects (kv_tool.py badinput): answered as Redis does, the
#    server keeps serving others, no value corrupted;
#  - values of any size: 4 MB SET/GET byte-identical, redis-benchmark -d 65536; hashes, lists,
#    sets, expiry commands, RENAME/COPY, MULTI/EXEC, SELECT, all still there after a restart;
#  - SIGTERM exits 0; a restart on the same pool recovers every key, byte-identical.
# Needs redis-tools (redis-cli, redis-benchmark) and python3.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh" # start_kv

KV_TOOL=$PASTE_SRC/tests/integration/kv_tool.py
PORT=6379
NKEYS=${KV_TEST_KEYS:-100000}
rm -f "$LOGDIR"/pipe.*.resp # mass_insert makes each once per run
for t in redis-cli redis-benchmark python3; do
	command -v "$t" >/dev/null || fail "$t not found: install redis-tools and python3 (scripts/deps)"
done

cli() { in_cli redis-cli -h "$HOST" -p "$PORT" "$@"; }

# expect WANT CMD...: redis-cli's output of CMD must be WANT.
expect() {
	local want=$1 got
	shift
	got=$(cli "$@" 2>&1) || true
	[ "$got" = "$want" ] || fail "redis-cli $*: got '$got', want '$want'"
}

info_field() { cli INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"; }

basic() {
	expect OK SET foo bar
	expect bar GET foo
	expect OK SET empty ""
	expect "" GET empty
	expect 0 STRLEN empty
	expect 1 DEL foo
	expect "" GET foo
	expect 0 DEL foo
	expect 11 INCRBY counter 11
	expect 10 DECR counter
	expect 3 APPEND ap abc
	expect 6 APPEND ap def
	expect abcdef GET ap
	expect "ERR value is not an integer or out of range" INCR ap
	expect "ERR unknown command 'FOO', with args beginning with: 'a' 'b' " FOO a b
	expect "ERR unknown command 'FOO', with args beginning with: " FOO
	expect "ERR wrong number of arguments for 'get' command" GET
	expect "ERR wrong number of arguments for 'set' command" SET k
	expect "ERR syntax error" SET k v NX XX
	expect "ERR invalid expire time in 'set' command" SET k v EX 0
	expect "ERR DB index is out of range" SELECT 16
	expect OK SELECT 0
	expect PONG PING
	expect OK SET ttlkey v PX 300
	[ "$(cli PTTL ttlkey)" -gt 0 ] || fail "PTTL of a key with PX 300 is not positive"
	sleep 0.5
	expect "" GET ttlkey
	expect -2 TTL ttlkey
	expect "" SET nx v NX GET
	expect v SET nx w XX GET
	cli INFO >"$LOGDIR/info.$1.txt"
	for s in Server Persistence Stats Keyspace; do
		grep -q "^# $s" "$LOGDIR/info.$1.txt" || fail "INFO has no '# $s' section"
	done
	if [ "$1" = paste ]; then # one connection: ~218 frames on the fill ring, not 4096
		local fill
		fill=$(tr -d '\r' <"$LOGDIR/info.$1.txt" | sed -n 's/^frames_fill://p')
		[ -n "$fill" ] && [ "$fill" -le 512 ] ||
			fail "frames_fill '$fill' at one connection: the fill ring should hold what one connection can send (docs/packet-path.md, Fill ring depth)"
	fi
	[ "$(cli COMMAND COUNT)" -gt 20 ] || fail "COMMAND COUNT"
	cli COMMAND DOCS >/dev/null || fail "COMMAND DOCS"
	expect OK FLUSHALL
	expect 0 DBSIZE
	log "$1: redis-cli SET/GET/DEL/INFO, errors, expiry, COMMAND: ok"
}

# Values of any size and the other types; types_check after a restart finds them all.
types() {
	local big=$LOGDIR/big.$1.bin f=$LOGDIR/bench64k.$1.txt
	head -c 4194304 /dev/urandom >"$big"
	in_cli redis-cli -h "$HOST" -p "$PORT" -x SET big4m <"$big" >/dev/null || fail "SET of 4 MB"
	expect 4194304 STRLEN big4m
	[ "$(in_cli redis-cli -h "$HOST" -p "$PORT" GET big4m | head -c 4194304 | md5sum)" = \
		"$(md5sum <"$big")" ] || fail "GET of 4 MB is not byte-identical"
	expect 3 HSET h f1 v1 f2 v2 f3 ""
	expect v1 HGET h f1
	expect 1 HDEL h f2
	expect 11 HINCRBY h n 11
	expect 3 HLEN h
	expect "WRONGTYPE Operation against a key holding the wrong kind of value" GET h
	expect 3 RPUSH l a b c
	expect 2 SADD s x y
	expect OK SET ttl v
	expect 1 EXPIRE ttl 100000 NX
	expect 0 EXPIRE ttl 10 GT
	expect OK RENAME ttl ttl2
	expect 1 COPY h hcopy
	printf 'MULTI\nSET m1 1\nINCR m1\nEXEC\n' |
		in_cli redis-cli -h "$HOST" -p "$PORT" >"$LOGDIR/multi.$1.txt"
	[ "$(tail -n 1 "$LOGDIR/multi.$1.txt")" = 2 ] || fail "MULTI/EXEC: $(cat "$LOGDIR/multi.$1.txt")"
	printf 'SELECT 5\nSET db5key five\n' | in_cli redis-cli -h "$HOST" -p "$PORT" >/dev/null
	expect "" GET db5key
	in_cli redis-benchmark -h "$HOST" -p "$PORT" -t set,get -d 65536 -c 4 -n 400 -q >"$f" 2>&1 ||
		fail "redis-benchmark -d 65536 failed: $(tail -n 5 "$f")"
	! grep -qi 'error' "$f" || fail "redis-benchmark -d 65536: $(grep -i -m3 error "$f")"
	[ "$(cli STRLEN key:__rand_int__)" = 65536 ] || fail "benchmark value is not 65536 bytes"
	log "$1: 4 MB SET/GET, -d 65536 benchmark, hashes, lists, sets, expiry, MULTI, SELECT: ok"
}

types_check() {
	[ "$(in_cli redis-cli -h "$HOST" -p "$PORT" GET big4m | head -c 4194304 | md5sum)" = \
		"$(md5sum <"$LOGDIR/big.$1.bin")" ] || fail "the 4 MB value differs after a restart"
	[ "$(cli HGETALL hcopy | paste -d= - - | sort | tr '\n' ' ')" = "f1=v1 f3= n=11 " ] ||
		fail "HGETALL of the copied hash after a restart: $(cli HGETALL hcopy | tr '\n' ' ')"
	expect 11 HGET h n
	expect "$(printf 'a\nb\nc')" LRANGE l 0 -1
	expect 2 SCARD s
	expect v GET ttl2
	[ "$(cli TTL ttl2)" -gt 99000 ] || fail "the expiry of ttl2 was lost in the restart"
	expect 2 GET m1
	[ "$(printf 'SELECT 5\nGET db5key\n' | in_cli redis-cli -h "$HOST" -p "$PORT" | tail -n 1)" = five ] ||
		fail "database 5's key lost in the restart"
	log "$1: after the restart: 4 MB value, hash, list, set, expiry, database 5: ok"
}

mass_insert() {
	local out pipe=$LOGDIR/pipe.$NKEYS.$2.resp
	[ -s "$pipe" ] || python3 "$KV_TOOL" gen-pipe "$NKEYS" "$2" >"$pipe" # the same for every transport
	out=$(in_cli redis-cli -h "$HOST" -p "$PORT" --pipe <"$pipe" 2>&1) || fail "--pipe: $out"
	grep -q "errors: 0, replies: $NKEYS" <<<"$out" || fail "--pipe: $out"
	[ "$(cli DBSIZE)" = "$NKEYS" ] || fail "DBSIZE $(cli DBSIZE) after --pipe of $NKEYS keys"
	in_cli python3 "$KV_TOOL" verify "$HOST" "$PORT" "$NKEYS" "$2" >&2 || fail "values differ after --pipe"
	log "$1: --pipe mass insert of $NKEYS keys, read back byte-identical"
}

benchmark() {
	local f=$LOGDIR/bench.$1.txt v1 v2
	in_cli redis-benchmark -h "$HOST" -p "$PORT" -t set,get,incr,mset -d 1024 -c 50 -n 20000 -q \
		>"$f" 2>&1 || fail "redis-benchmark failed: $(tail -n 5 "$f")"
	# The pipelined run: 25,000 requests per test over 100,000 random keys (MSET sets 10 a request:
	# most keys get written). It was 100,000 per test: 35 s of the paste transport's 50 in the ASan
	# tree, for no check more.
	in_cli redis-benchmark -h "$HOST" -p "$PORT" -t set,get,incr,mset -d 1024 -c 50 -n 25000 \
		-P 16 -r 100000 -q >>"$f" 2>&1 || fail "redis-benchmark -P 16 failed: $(tail -n 5 "$f")"
	tr '\r' '\n' <"$f" | grep 'requests per second' | sed "s/^/[$1] /" >&2
	! grep -qi 'error' "$f" || fail "redis-benchmark reported errors: $(grep -i -m3 error "$f")"
	[ "$(tr '\r' '\n' <"$f" | grep -c 'requests per second')" = 8 ] || fail "redis-benchmark: missing results"
	# A run writes one random 1024-byte payload to every key (SET and MSET alike): the keys of
	# the -r run must all read back as the same 1024 bytes.
	[ "$(cli STRLEN key:__rand_int__)" = 1024 ] || fail "benchmark value is not 1024 bytes"
	cli --scan --pattern 'key:0*' >"$LOGDIR/scan.$1.txt" || fail "redis-cli --scan failed"
	v2=$(head -n 1 "$LOGDIR/scan.$1.txt")
	[ "$(cli STRLEN "$v2")" = 1024 ] || fail "benchmark value of $v2 is not 1024 bytes"
	# 200 GETs through one redis-cli (a command per line; --no-raw: a reply per line, escaped)
	v1=$(head -n 200 "$LOGDIR/scan.$1.txt" | sed 's/^/GET /' | cli --no-raw | sort | uniq -c | cut -c1-100)
	[ "$(printf '%s\n' "$v1" | wc -l)" = 1 ] || fail "benchmark values differ: $v1"
	[ "$(printf '%s\n' "$v1" | awk '{print $1}')" = 200 ] || fail "benchmark keys missing: $v1"
	# --scan walked the whole keyspace: every key once or more, DBSIZE of them
	[ "$(sort -u "$LOGDIR/scan.$1.txt" | wc -l)" = "$(cli KEYS 'key:0*' | wc -l)" ] ||
		fail "SCAN and KEYS disagree"
	[ "$(info_field stats rejected_oom)" = 0 ] || fail "writes were refused during the benchmark"
}

# Index full and pool short of frames: -OOM replies, earlier keys intact, deletes free room.
full() {
	local pool=/dev/shm/paste-test-$$-full.pool out oom="OOM command not allowed when used memory > 'maxmemory'."
	CLEANUP_FILES+=("$pool")
	HOST=$SRV_IP
	start_kv --transport kernel --ip "$SRV_IP" --port "$PORT" --pool "$pool" --pool-size 32M --keys 500
	python3 "$KV_TOOL" gen-pipe 600 11 >"$LOGDIR/pipe.full.resp"
	out=$(in_cli redis-cli -h "$HOST" -p "$PORT" --pipe <"$LOGDIR/pipe.full.resp" 2>&1) || true
	grep -q "errors: 100, replies: 600" <<<"$out" || fail "index full: --pipe said: $out"
	expect "$oom" SET one-more x
	in_cli python3 "$KV_TOOL" verify "$HOST" "$PORT" 500 11 >&2 || fail "values differ with the index full"
	expect 1 DEL pipe:11:0
	expect OK SET one-more x
	expect x GET one-more
	stop_echo || fail "paste-kv exited with status $ECHO_RC"
	start_kv --transport kernel --ip "$SRV_IP" --port "$PORT" --pool "$pool" --reserve-frames 100000000
	expect "$oom" SET another x
	expect "$oom" INCR counter
	expect x GET one-more
	expect 1 DEL one-more
	stop_echo || fail "paste-kv exited with status $ECHO_RC"
	log "index full and frames short: -OOM, nothing lost, DEL frees room"
}

# one_transport TR N: everything above on transport TR, on port 6379 + N, with its own pool file
# (paste-test-PID-TR.pool) and paste-kv logs (kv.(100N + i).log). The transports run at the same
# time (a subshell each, see the end).
one_transport() {
	local tr=$1 args line POOL=/dev/shm/paste-test-$$-$1.pool
	PORT=$((6379 + $2))
	ECHO_N=$((100 * $2))
	if [ "$tr" = paste ]; then
		HOST=$STACK_IP
		args=(--ifname "$VETH_SRV" --ip "$STACK_IP")
	else
		HOST=$SRV_IP
		args=(--transport "$tr" --ip "$SRV_IP")
	fi
	rm -f "$POOL"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL" --pool-size 1G
	basic "$tr"
	mass_insert "$tr" 7
	benchmark "$tr"
	types "$tr"
	in_cli python3 "$KV_TOOL" badinput "$HOST" "$PORT" >"$LOGDIR/badinput.$tr.txt" 2>&1 ||
		{ cat "$LOGDIR/badinput.$tr.txt" >&2; fail "bad input handling"; }
	log "$tr: $(tail -n 1 "$LOGDIR/badinput.$tr.txt")"
	in_cli python3 "$KV_TOOL" verify "$HOST" "$PORT" "$NKEYS" 7 >&2 || fail "values differ after bad input"
	line=$(echo_stats)
	log "$tr: in place $(stat_field "$line" val_inplace), copied $(stat_field "$line" val_copied)" \
		"(of $(($(stat_field "$line" val_inplace) + $(stat_field "$line" val_copied))) values)," \
		"fences $(stat_field "$line" fences), rounds $(stat_field "$line" rounds)"
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
	start_kv "${args[@]}" --port "$PORT" --pool "$POOL"
	grep -q "^paste-kv: recovered keys=$(($(cli DBSIZE) + 1)) " "$ECHO_LOG" ||
		fail "recovery report" # DBSIZE counts database 0; db5key is the one more
	types_check "$tr"
	in_cli python3 "$KV_TOOL" verify "$HOST" "$PORT" "$NKEYS" 7 >&2 || fail "values differ after restart"
	stop_echo || fail "paste-kv exited with status $ECHO_RC after SIGTERM (expected 0)"
	[ "$tr" != paste ] || ! xdp_attached || fail "XDP program still attached after a clean exit"
}

# The --pipe input of mass_insert, made once before the transports start (they read it at once).
python3 "$KV_TOOL" gen-pipe "$NKEYS" 7 >"$LOGDIR/pipe.$NKEYS.7.resp"
TRS=(${KV_TEST_TRANSPORTS:-paste kernel io_uring})
for transport in "${TRS[@]}"; do
	CLEANUP_FILES+=("/dev/shm/paste-test-$$-$transport.pool")
done
in_parallel one_transport "${TRS[@]}"
PORT=6379
full
