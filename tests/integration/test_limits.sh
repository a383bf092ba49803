#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Resource limits of the stack and of paste-wal, on the paste transport (dedicated IP):
#  (a) max-conns: paste-echo --max-conns 50 gets 80 kernel connections held open at once: exactly
#      50 echo, the other 30 are reset (the stack completes the handshake, then on_accept refuses
#      and tcp_abort() sends RST); conns_refused >= 30; afterwards a normal client is served.
#      The same against paste-wal --max-conns 50 (every served connection gets its 201).
#  (b) slow readers: 40 connections each push up to 1 MiB at paste-echo and never read the echo.
#      The stack may hold at most one receive window (64 KiB, Debian's lwIP TCP_WND) plus one send
#      buffer (TCP_SND_BUF = 64 KiB) per connection: frames_rx + frames_tx must stay below
#      40 x 100 frames, the allocator must keep free frames, and a normal client running beside
#      them must be served completely. Then the slow readers close and every frame comes back.
#  (c) pool exhaustion: paste-wal on a 64 MiB pool gets 64 KiB POSTs until it answers 507 (the
#      pool is full): never a crash or a reset; GET still works; DELETE /log?upto=<last> frees the
#      frames and the next POST is 201 again; SIGTERM exits 0 (frame accounting).
. "$(dirname "$0")/lib.sh"
testbed_up

WAL=$PASTE_BUILD/paste-wal
PORT=8080
[ -x "$WAL" ] || fail "$WAL not built"
command -v python3 >/dev/null || fail "python3 not installed"

# held_conns N PORT MODE: open N kernel connections at once, then on each one exchange (echo:
# "ping" back; wal: one POST -> 201). Prints "served=S reset=R".
held_conns() {
	in_cli python3 - "$STACK_IP" "$2" "$1" "$3" <<'EOF'
import socket, sys, time
host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ss = []
for i in range(n):
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect((host, port))
    except OSError:
        pass
    ss.append(s)
time.sleep(1)
served = reset = 0
for s in ss:
    try:
        if mode == "echo":
            s.sendall(b"ping"); ok = s.recv(4) == b"ping"
        else:
            s.sendall(b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping")
            ok = s.recv(4096).startswith(b"HTTP/1.1 201")
        served += ok; reset += not ok
    except OSError:
        reset += 1
for s in ss:
    s.close()
print("served=%d reset=%d" % (served, reset))
EOF
}

# ---- (a) max-conns ---------------------------------------------------------------------------------
start_echo --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 --pool "$POOL" --max-conns 50
r=$(held_conns 80 7 echo) || fail "held_conns failed"
line=$(echo_stats)
log "(a) echo --max-conns 50, 80 connections at once: $r, conns_accepted=$(stat_field "$line" conns_accepted)" \
	"conns_refused=$(stat_field "$line" conns_refused)"
[ "$r" = "served=50 reset=30" ] || fail "(a) expected served=50 reset=30, got $r"
[ "$(stat_field "$line" conns_refused)" -ge 30 ] || fail "(a) conns_refused=$(stat_field "$line" conns_refused) < 30"
run_client --connect "$STACK_IP:7" --conns 10 --bytes 64K || fail "(a) a normal client failed after the refusals"
line=$(wait_idle 10)
check_quiescent "$line"

# ---- (b) slow readers -------------------------------------------------------------------------------
SLOW_OUT=$LOGDIR/slow.out
SLOW_STOP=$LOGDIR/slow.stop
rm -f "$SLOW_STOP"
in_cli python3 - "$STACK_IP" 7 40 "$SLOW_STOP" <<'EOF' >"$SLOW_OUT" 2>&1 &
import os, socket, sys, time
host, port, n, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ss = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # keep the client's own buffering small
    s.setblocking(False)
    ss.append(s)
chunk = b"s" * 65536
sent = [0] * n
t_end = time.monotonic() + 4
while time.monotonic() < t_end:
    for i, s in enumerate(ss):
        if sent[i] < (1 << 20):
            try:
                sent[i] += s.send(chunk)
            except BlockingIOError:
                pass
    time.sleep(0.01)
print("slow: conns=%d pushed=%d bytes (never read)" % (n, sum(sent)), flush=True)
end = time.monotonic() + 12  # hold them, unread, while the test looks at the counters (12 s at most)
while not os.path.exists(stop) and time.monotonic() < end:
    time.sleep(0.05)
for s in ss:
    s.close()
EOF
SLOW_PID=$!
track_pid $SLOW_PID
sleep 5
l1=$(echo_stats)
run_client --connect "$STACK_IP:7" --conns 5 --bytes 256K || fail "(b) a normal client was not served beside the slow readers"
l2=$(echo_stats)
held=$(($(stat_field "$l2" frames_rx) + $(stat_field "$l2" frames_tx)))
log "(b) $(head -n1 "$SLOW_OUT"); stack holds frames_rx=$(stat_field "$l1" frames_rx)" \
	"frames_tx=$(stat_field "$l1" frames_tx) (after the normal client: $held), frames_free=$(stat_field "$l2" frames_free)" \
	"of $(stat_field "$l2" frames_total), conns_open=$(stat_field "$l2" conns_open)"
[ "$(stat_field "$l1" conns_open)" -ge 40 ] || fail "(b) the slow readers are not connected"
[ $(($(stat_field "$l1" frames_rx) + $(stat_field "$l1" frames_tx))) -le 4000 ] || fail "(b) slow readers pin more than 100 frames each"
[ "$held" -le 4000 ] || fail "(b) slow readers pin more than 100 frames each"
[ "$(stat_field "$l2" frames_free)" -gt 0 ] || fail "(b) no free frame left"
touch "$SLOW_STOP" # the counters are read: the slow readers may close
wait $SLOW_PID || true
untrack_pid $SLOW_PID
line=$(wait_idle 15)
check_quiescent "$line"
stop_echo || fail "paste-echo exited with $ECHO_RC"

# ---- (a') paste-wal --max-conns and (c) pool exhaustion ----------------------------------------------
rm -f "$POOL"
WAL_LOG=$LOGDIR/wal.log
ECHO_LOG=$WAL_LOG
start_ready paste-wal "$WAL_LOG" ip netns exec "$NS_SRV" "$WAL" --ifname "$VETH_SRV" --ip "$STACK_IP" \
	--port $PORT --pool "$POOL" --pool-size 64M --max-conns 50
WAL_PID=$READY_PID
ECHO_PID=$WAL_PID
r=$(held_conns 80 $PORT wal) || fail "held_conns (wal) failed"
log "(a) paste-wal --max-conns 50, 80 connections at once: $r"
[ "$r" = "served=50 reset=30" ] || fail "(a) paste-wal: expected served=50 reset=30, got $r"

r=$(in_cli python3 - "$STACK_IP" $PORT <<'EOF'
import socket, sys, os, json
host, port = sys.argv[1], int(sys.argv[2])
def req(s, data):
    s.sendall(data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = 0
    for l in head.split(b"\r\n"):
        if l.lower().startswith(b"content-length:"):
            n = int(l.split(b":")[1])
    while len(body) < n:
        body += s.recv(65536)
    return int(head.split()[1]), body[:n]
s = socket.create_connection((host, port), timeout=10)
body = os.urandom(65536)
post = b"POST /log HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
ok = last = 0
st = 201
for i in range(3000):  # 64 MiB pool: full long before
    try:
        st, rb = req(s, post)
    except (ConnectionResetError, BrokenPipeError):
        s = socket.create_connection((host, port), timeout=10)  # a 507 may close the connection
        continue
    if st == 201:
        ok += 1; last = json.loads(rb)["seq"]
    else:
        break
s.close()
s = socket.create_connection((host, port), timeout=10)
g, gb = req(s, b"GET /log/%d HTTP/1.1\r\nHost: x\r\n\r\n" % last)
d, _ = req(s, b"DELETE /log?upto=%d HTTP/1.1\r\nHost: x\r\n\r\n" % last)
s.close()
s = socket.create_connection((host, port), timeout=10)
again, _ = req(s, post)
print("accepted=%d then=%d get_last=%d get_same=%d delete=%d post_after_delete=%d" %
      (ok, st, g, gb == body, d, again))
EOF
) || fail "(c) exhaustion client failed: $r"
kill -0 $WAL_PID 2>/dev/null || fail "(c) paste-wal died"
log "(c) 64 MiB pool, 64 KiB POSTs: $r"
case $r in
*" then=507 get_last=200 get_same=1 delete=200 post_after_delete=201") ;;
*) fail "(c) expected 507 when full, then GET 200, DELETE 200, POST 201: $r" ;;
esac
kill -USR1 $WAL_PID
sleep 0.5
log "(c) $(grep '^stats' "$WAL_LOG" | tail -n1 | tr ' ' '\n' | grep -E '^(refused_full|replies_5xx|frames_free|frames_kept|records)=' | tr '\n' ' ')"
kill -TERM $WAL_PID
rc=0
wait $WAL_PID || rc=$?
untrack_pid $WAL_PID
ECHO_PID=
[ $rc -eq 0 ] || fail "paste-wal exited with status $rc after SIGTERM"
