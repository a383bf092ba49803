#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_zc_echo: paste-echo in the guest with its AF_XDP socket bound zero-copy (--zero-copy
# required) serves many concurrent kernel TCP connections from the host side, every byte checked
# by paste-testclient (random write sizes, client and half closes). Then the counters must show the
# zero-copy path: zerocopy=1 (the kernel's XDP_OPTIONS), rx_copied_bytes=0 with every payload byte
# counted (each reached the application inside the pool frame the NIC wrote), no invalid
# descriptors, no connection or frame left. Then --busy-poll in zero-copy mode serves 50
# connections byte-checked (SO_PREFER_BUSY_POLL had kept virtio_net from transmitting: every
# SYN-ACK stayed on the TX ring). Last, the second queue pair: zero-copy bind on queue 1
# is refused while the guest runs one queue pair (the message names the driver) and works once
# 'ethtool -L eth0 combined 2' enables it.
. "$(dirname "$0")/lib.sh"

POOL=/dev/shm/zc-echo.pool
ECHO=(paste-echo --ifname eth0 --ip "$STACK_IP" --port 7 --pool "$POOL" --pool-size 64M)

ready=$(vm_serve echo /tmp/echo.log 7 "${ECHO[*]}" --zero-copy required) || fail "paste-echo did not start: $ready"
[ "$(field "$ready" zerocopy)" = 1 ] || fail "not zero-copy: $ready"
log "$ready"

CONNS=${ZC_CONNS:-200}
BYTES=${ZC_BYTES:-128K}
on_host "$PASTE_CLIENT" --connect "$STACK_IP:7" --conns "$CONNS" --bytes "$BYTES" --timeout 150 \
	--seed 11 >"$LOGDIR/client1.log" 2>&1 || { cat "$LOGDIR/client1.log" >&2; fail "client (close=client) failed"; }
log "$(grep -h '^testclient: conns' "$LOGDIR/client1.log")"
on_host "$PASTE_CLIENT" --connect "$STACK_IP:7" --conns 100 --bytes 64K --close half --timeout 150 \
	--seed 12 >"$LOGDIR/client2.log" 2>&1 || { cat "$LOGDIR/client2.log" >&2; fail "client (close=half) failed"; }
log "$(grep -h '^testclient: conns' "$LOGDIR/client2.log")"

# Counters once every connection is closed (lwIP may still be finishing the last closes).
sent=0
for f in client1 client2; do
	sent=$((sent + $(field "$(grep -h '^testclient: conns' "$LOGDIR/$f.log")" bytes_verified)))
done
for ((i = 0; i < 30; i++)); do
	st=$(in_vm "n=\$(grep -c '^stats ' /tmp/echo.log); kill -USR1 \$(cat /tmp/echo.pid)
		j=0; while [ \$(grep -c '^stats ' /tmp/echo.log) -le \$n ] && [ \$j -lt 100 ]; do sleep 0.1; j=\$((j+1)); done
		grep '^stats ' /tmp/echo.log | tail -n 1")
	[ "$(field "$st" conns_open)" = 0 ] && [ "$(field "$st" frames_rx)" = 0 ] && break
	sleep 1
done
log "$st"
[ "$(field "$st" zerocopy)" = 1 ] || fail "stats: zerocopy is not 1"
[ "$(field "$st" rx_copied_bytes)" = 0 ] || fail "stats: rx_copied_bytes=$(field "$st" rx_copied_bytes): the receive path copied"
[ "$(field "$st" rx_payload_bytes)" -ge "$sent" ] ||
	fail "stats: rx_payload_bytes=$(field "$st" rx_payload_bytes), but the clients verified $sent bytes"
[ "$(field "$st" rx_invalid)" = 0 ] || fail "stats: rx_invalid=$(field "$st" rx_invalid)"
[ "$(field "$st" conns_open)" = 0 ] || fail "stats: conns_open=$(field "$st" conns_open) after the clients ended"
[ "$(field "$st" frames_rx)" = 0 ] || fail "stats: frames_rx=$(field "$st" frames_rx) held after every connection closed"
[ "$(field "$st" conns_accepted)" -ge $((CONNS + 100)) ] || fail "stats: conns_accepted=$(field "$st" conns_accepted)"

vm_signal echo TERM
rc=$(vm_wait echo)
[ "$rc" = 0 ] || fail "paste-echo exited with status $rc after SIGTERM"

# Busy polling in zero-copy mode (SO_PREFER_BUSY_POLL would keep virtio_net from transmitting).
ready=$(vm_serve echobp /tmp/echobp.log 7 "${ECHO[*]}" --zero-copy required --busy-poll) ||
	fail "paste-echo --busy-poll did not start: $ready"
[ "$(field "$ready" zerocopy)" = 1 ] || fail "--busy-poll: not zero-copy: $ready"
on_host "$PASTE_CLIENT" --connect "$STACK_IP:7" --conns 50 --bytes 64K --timeout 120 --seed 13 \
	>"$LOGDIR/client3.log" 2>&1 || { cat "$LOGDIR/client3.log" >&2; fail "client against --busy-poll failed"; }
log "busy-poll: $(grep -h '^testclient: conns' "$LOGDIR/client3.log")"
vm_signal echobp TERM
rc=$(vm_wait echobp)
[ "$rc" = 0 ] || fail "paste-echo --busy-poll exited with status $rc after SIGTERM"

# The second queue pair: refused while disabled (clear message), zero-copy once enabled.
out=$(in_vm "${ECHO[*]} --queue 1 --zero-copy required" 2>&1) && fail "queue 1 bound while disabled: $out"
grep -q 'zero copy required.*driver virtio_net of eth0 on kernel' <<<"$out" ||
	fail "no clear message for the disabled queue: $out"
in_vm "ethtool -L eth0 combined 2" >/dev/null || fail "ethtool -L eth0 combined 2 failed"
ready=$(vm_start echo1 /tmp/echo1.log "${ECHO[*]}" --queue 1 --zero-copy required) ||
	fail "paste-echo on queue 1 did not start: $ready"
[ "$(field "$ready" zerocopy)" = 1 ] || fail "queue 1 not zero-copy: $ready"
vm_signal echo1 TERM
rc=$(vm_wait echo1)
[ "$rc" = 0 ] || fail "paste-echo on queue 1 exited with status $rc after SIGTERM"
in_vm "ethtool -L eth0 combined 1; rm -f $POOL" >/dev/null
log "queue 1: zero-copy bind works with 2 queue pairs, refused with a clear message with 1"
