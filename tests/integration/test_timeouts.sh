#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The daemons' shared event loop (src/apps/daemon_loop.c) end to end, on the kernel transport:
# paste-echo --idle-timeout, paste-kv --request-timeout and --idle-timeout. A client that sends
# nothing, or half a Redis command and then nothing, must see the server end the connection
# (within the timeout plus a tick; 8 s allowed); a client that keeps talking, or a silent one
# when only the request timeout is set, must not; the stats line counts the timeouts. The probes
# of one server run at the same time. ~10 s.
. "$(dirname "$0")/lib.sh"
testbed_up
. "$(dirname "$0")/kv_lib.sh" # start_kv

# probe PORT MODE SECONDS: a client in the client namespace; MODE silent (sends nothing), partial
# (half a RESP command, then nothing), chatty (a byte, or PING for paste-kv, every 0.2 s, reading
# the answers). Prints "closed" when the server ended the connection within SECONDS, else "open".
probe() {
	in_cli python3 - "$SRV_IP" "$@" <<'EOF'
import socket, sys, time
host, port, mode, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.create_connection((host, port), timeout=10)
if mode == "partial":
    s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nk")
end = time.monotonic() + secs
s.settimeout(0.2)
while time.monotonic() < end:
    if mode == "chatty":
        s.sendall(b"PING\r\n" if port == 6379 else b"x")
    try:
        if s.recv(4096) == b"":
            print("closed"); sys.exit(0)
    except socket.timeout:
        pass
    except ConnectionResetError:
        print("closed"); sys.exit(0)
print("open")
EOF
}

expect() { # expect WHAT GOT WANT
	[ "$2" = "$3" ] || fail "$1: the connection is $2, expected $3"
	log "$1: $2"
}

# probes PORT "MODE SECONDS WANT WHAT"...: the probes at the same time, each on its own connection
# (the 3 s ones that must stay open need not wait for each other), then expect for each.
probes() {
	local port=$1 spec mode secs want what i=0 pids=()
	shift
	for spec in "$@"; do
		read -r mode secs _ <<<"$spec"
		probe "$port" "$mode" "$secs" >"$LOGDIR/probe.$port.$i" &
		pids+=($!)
		i=$((i + 1))
	done
	i=0
	for spec in "$@"; do
		wait "${pids[$i]}" || fail "probe $spec failed"
		read -r mode secs want what <<<"$spec"
		expect "$what" "$(cat "$LOGDIR/probe.$port.$i")" "$want"
		i=$((i + 1))
	done
}

# ---- paste-echo --idle-timeout 1 ----------------------------------------------------------------
start_echo --transport kernel --ip "$SRV_IP" --port 7 --pool "$POOL" --pool-size 64M --idle-timeout 1
probes 7 "silent 8 closed echo, silent client" "chatty 3 open echo, chatty client for 3 s"
line=$(echo_stats)
[ "$(stat_field "$line" timeouts)" = 1 ] || fail "echo: timeouts is not 1: $line"
stop_echo || fail "paste-echo exited with $ECHO_RC"

# ---- paste-kv --request-timeout 1, then --idle-timeout 1 ---------------------------------------
rm -f "$POOL"
start_kv --transport kernel --ip "$SRV_IP" --port 6379 --pool "$POOL" --pool-size 64M --request-timeout 1
probes 6379 "partial 8 closed kv, half a command" \
	"silent 3 open kv, silent client for 3 s (no idle timeout)" "chatty 3 open kv, chatty client for 3 s"
line=$(echo_stats)
[ "$(stat_field "$line" timeouts)" = 1 ] || fail "kv: timeouts is not 1: $line"
stop_echo || fail "paste-kv exited with $ECHO_RC"
start_kv --transport kernel --ip "$SRV_IP" --port 6379 --pool "$POOL" --idle-timeout 1
probes 6379 "silent 8 closed kv, silent client" "chatty 3 open kv, chatty client for 3 s"
line=$(echo_stats)
[ "$(stat_field "$line" timeouts)" = 1 ] || fail "kv: timeouts is not 1: $line"
stop_echo || fail "paste-kv exited with $ECHO_RC"
