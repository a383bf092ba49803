#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-kv as a replica of a redis-server primary (--replicaof, kv_replica.c), on the paste
# transport (dedicated IP: the link is an outgoing lwIP connection, paste_connect) and on the
# kernel and io_uring transports; the primary runs in the client namespace. For each transport:
# keys written before the replica attaches (strings small and 200 KB, integers, hashes small and
# large, a list, sets, a sorted set, an expiry, a key in database 3) and after (more of each, an overwrite, a DEL, a new
# field) read back from paste-kv byte-identical to the primary's, and the primary sees the offset
# acknowledged; a client's write is refused with -READONLY; after kill -9 of the replica, with the
# primary stopped (SIGSTOP), the restarted replica serves every key from its pool; with the
# primary resumed it resynchronises in full (the offset kept in the pool is not trusted after a
# crash) and follows new writes; stopped cleanly (SIGTERM) and restarted, it continues with a
# partial resync (PSYNC with the replication id and offset kept in its pool) and gets the writes
# made meanwhile; REPLICAOF NO ONE makes it writable. About 35 s. KV_TEST_TRANSPORTS picks transports; "paste-shared" (the paste transport in
# shared-IP mode, ~12 s more) is not in the default list: test_connect covers its connects.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh"

command -v redis-server >/dev/null || fail "redis-server not installed (scripts/deps installs it)"
command -v redis-cli >/dev/null || fail "redis-cli not installed (scripts/deps installs it)"
PPORT=6390
RDIR=$LOGDIR/primary
rm -rf "$RDIR"
mkdir -p "$RDIR"

# ip netns exec directly (not the in_cli function): $! must be redis-server itself (SIGSTOP, kill)
ip netns exec "$NS_CLI" redis-server --bind "$CLI_IP" --port $PPORT --save '' --appendonly no \
	--dir "$RDIR" --protected-mode no --logfile "$RDIR/log" &
PRIMARY_PID=$!
track_pid "$PRIMARY_PID"
P() { in_cli redis-cli -h "$CLI_IP" -p $PPORT "$@"; }
for ((i = 0; i < 100; i++)); do
	[ "$(P ping 2>/dev/null)" = PONG ] && break
	sleep 0.1
done
[ "$(P ping 2>/dev/null)" = PONG ] || fail "redis-server primary not up"

# value NAME SIZE: SIZE bytes of text derived from NAME (large values go through -x)
value() { python3 -c "import hashlib,sys; n,s=sys.argv[1],int(sys.argv[2]); b=b''
while len(b)<s: b+=hashlib.sha256(n.encode()+str(len(b)).encode()).hexdigest().encode()
sys.stdout.write(b[:s].decode())" "$1" "$2"; }

KEYS=()
# write PREFIX: strings, integers, hashes, an expiry, a key in db 3 on the primary
write() {
	local p=$1
	P set "$p:small" "hello $p" >/dev/null
	value "$p:big" 200000 | P -x set "$p:big" >/dev/null
	value "$p:mid" 3000 | P -x set "$p:mid" >/dev/null
	P set "$p:int" 12345 >/dev/null
	P set "$p:neg" -9876543210 >/dev/null
	P incrby "$p:ctr" 41 >/dev/null
	P hset "$p:h" name ada lang c year 1843 >/dev/null
	python3 -c "import hashlib,sys
for i in range(1, 151):
    print('HSET %s:bigh field%d value-%d-%s' % (sys.argv[1], i, i, hashlib.sha256(b'%d' % i).hexdigest()))" "$p" | P >/dev/null
	P set "$p:ttl" soon PX 600000 >/dev/null
	P -n 3 set "$p:db3" three >/dev/null
	P rpush "$p:l" a b c 42 >/dev/null
	P sadd "$p:s" x y z >/dev/null
	P sadd "$p:si" 1 2 -300 >/dev/null
	P zadd "$p:z" 1 one 2.5 two -3 three >/dev/null
	KEYS+=("$p:small" "$p:big" "$p:mid" "$p:int" "$p:neg" "$p:ctr" "$p:h" "$p:bigh" "$p:ttl"
		"$p:l" "$p:s" "$p:si" "$p:z")
}

# dump SRC KEY [DB]: what SRC (P, or a replica's command prefix) holds at KEY: type and content
dump() {
	local src=$1 k=$2 db=${3:-0} t
	t=$($src -n "$db" type "$k")
	echo "$k $db $t"
	case $t in
	string) $src -n "$db" get "$k" ;;
	hash) $src -n "$db" hgetall "$k" | paste - - | sort ;;
	list) $src -n "$db" lrange "$k" 0 -1 ;;
	set) $src -n "$db" smembers "$k" | sort ;;
	zset) $src -n "$db" zrange "$k" 0 -1 withscores ;;
	none) ;;
	*) echo "unexpected type" ;;
	esac
}

# digest SRC: a checksum over every key the test wrote, as SRC holds them
digest() {
	local src=$1 k
	{
		for k in "${KEYS[@]}"; do dump "$src" "$k"; done
		dump "$src" pre:db3 3
		dump "$src" deleted
	} | sha256sum
}

# check_all R: the replica holds every key as the primary does (and pre:ttl's expiry)
check_all() {
	local r=$1 ttl k
	if [ "$(digest P)" != "$(digest "$r")" ]; then
		for k in "${KEYS[@]}"; do
			[ "$(dump P "$k" | sha256sum)" = "$(dump "$r" "$k" | sha256sum)" ] ||
				log "differs: $k"
		done
		fail "the replica's keys differ from the primary's"
	fi
	ttl=$($r pttl pre:ttl)
	[ "$ttl" -gt 0 ] && [ "$ttl" -le 600000 ] || fail "pre:ttl has pttl $ttl on the replica"
}

# wait_synced R: the replica's offset reaches the primary's, and the primary saw it acknowledged
# (REPLCONF ACK)
wait_synced() {
	local r=$1 want got acked i
	for ((i = 0; i < 300; i++)); do
		want=$(P info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')
		acked=$(P info replication | tr -d '\r' | sed -n 's/^slave0:.*,offset=\([0-9]*\),.*/\1/p')
		got=$($r info replication 2>/dev/null | tr -d '\r' | sed -n 's/^master_repl_offset://p')
		[ -n "$got" ] && [ "$got" = "$want" ] && [ "$acked" = "$want" ] &&
			grep -q 'master_link_status:up' <<<"$($r info replication)" && return 0
		sleep 0.1
	done
	$r info replication >&2 || true
	fail "the replica did not catch up (offset ${got:-?}, acknowledged ${acked:-?}, primary $want)"
}

write pre
P set deleted soon >/dev/null

for transport in ${KV_TEST_TRANSPORTS:-paste kernel io_uring}; do
	case $transport in
	paste)
		HOST=$STACK_IP
		args=(--ifname "$VETH_SRV" --ip "$STACK_IP") ;;
	paste-shared) # the link's local port from the ephemeral range the XDP program steers
		HOST=$SRV_IP
		args=(--ifname "$VETH_SRV" --shared-ip --ip "$SRV_IP") ;;
	*)
		HOST=$SRV_IP
		args=(--transport "$transport" --ip "$SRV_IP") ;;
	esac
	R="in_cli redis-cli -h $HOST -p 6379"
	rm -f "$POOL"
	kvargs=("${args[@]}" --port 6379 --pool "$POOL" --pool-size 256M --replicaof "$CLI_IP $PPORT")
	start_kv "${kvargs[@]}"
	wait_synced "$R"
	grep -q 'paste-kv: replica: loaded' "$ECHO_LOG" || fail "$transport: no load line"
	check_all "$R"
	log "$transport: the snapshot loaded identical ($(grep -o 'loaded [0-9]* keys' "$ECHO_LOG"))"

	write "$transport"
	P del deleted >/dev/null
	P set pre:small "overwritten on the primary" >/dev/null
	P hset pre:h lang c99 extra field >/dev/null
	wait_synced "$R"
	check_all "$R"
	log "$transport: the command stream applied identical"

	out=$($R set mine 1 2>&1)
	[[ $out == *"READONLY You can't write against a read only replica."* ]] ||
		fail "$transport: a client's SET on the replica answered '$out'"
	[ "$($R role | head -1)" = slave ] || fail "$transport: ROLE is not slave"

	# kill -9 with the primary stopped: everything must come from the pool
	want=$(digest P)
	kill -STOP "$PRIMARY_PID"
	kill -KILL "$ECHO_PID"
	wait "$ECHO_PID" 2>/dev/null || true
	untrack_pid "$ECHO_PID"
	start_kv "${kvargs[@]}"
	[ "$(digest "$R")" = "$want" ] || fail "$transport: after kill -9 the keys differ"
	grep -q 'master_link_status:down' <<<"$($R info replication)" ||
		fail "$transport: link up while the primary is stopped"
	log "$transport: after kill -9 every key is served from the pool (primary stopped)"
	kill -CONT "$PRIMARY_PID"
	P set "$transport:late" after-restart >/dev/null
	KEYS+=("$transport:late")
	wait_synced "$R"
	check_all "$R"
	grep -q 'pool was not closed cleanly' "$ECHO_LOG" && grep -q 'replica: full resync' "$ECHO_LOG" ||
		fail "$transport: after kill -9 the resync must be full (the kept offset is not trusted)"
	log "$transport: resynchronised in full after the restart"

	# a clean stop (SIGTERM) keeps the replication id and offset: the restart continues (PSYNC)
	stop_echo || fail "paste-kv ($transport) exited with $?"
	P set "$transport:while-down" written-while-stopped >/dev/null
	P hset pre:h while down >/dev/null
	KEYS+=("$transport:while-down")
	start_kv "${kvargs[@]}"
	wait_synced "$R"
	[ "$($R get "$transport:while-down")" = written-while-stopped ] &&
		[ "$($R hget pre:h while)" = down ] ||
		fail "$transport: the writes made while the replica was stopped are missing"
	grep -q 'replica: resuming replid' "$ECHO_LOG" && grep -q 'replica: partial resync' "$ECHO_LOG" ||
		fail "$transport: no partial resync after a clean restart (log: $ECHO_LOG)"
	grep -q 'paste_full_syncs:0' <<<"$($R info replication)" ||
		fail "$transport: a full resync after a clean restart"
	log "$transport: after a clean restart: +CONTINUE, the writes made meanwhile applied"

	[ "$($R replicaof no one)" = OK ] || fail "$transport: REPLICAOF NO ONE failed"
	[ "$($R set promoted yes)" = OK ] || fail "$transport: not writable after REPLICAOF NO ONE"
	[ "$($R get promoted)" = yes ] || fail "$transport: promoted write not readable"
	[ "$($R role | head -1)" = master ] || fail "$transport: ROLE is not master after promotion"
	stop_echo || fail "paste-kv ($transport) exited with $?"
	log "$transport: promoted and writable"
done
