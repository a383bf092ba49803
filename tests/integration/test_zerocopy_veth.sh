#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_zerocopy_veth: --zero-copy on veth, which has copy mode only.
#  - required: paste-echo, paste-wal and paste-kv exit 1 before "ready" with the documented message
#    (driver veth, this kernel, the errno, what to do), leave no XDP program attached, and the
#    interface serves again right after (auto starts);
#  - auto: starts in copy mode, zerocopy=0, and echoes with every byte checked;
#  - off: starts, zerocopy=0;
#  - a bad value is a usage error (exit 2) naming the option.
. "$(dirname "$0")/lib.sh"
testbed_up

KREL=$(uname -r)
base=(--ifname "$VETH_SRV" --ip "$STACK_IP" --pool "$POOL" --pool-size 32M)

for p in paste-echo paste-wal paste-kv; do
	rc=0
	out=$(in_srv timeout 60 "$PASTE_BUILD/$p" "${base[@]}" --port 7 --zero-copy required 2>&1) || rc=$?
	printf '%s\n' "$out" >"$LOGDIR/required.$p.log"
	[ $rc -eq 1 ] || fail "$p --zero-copy required on veth: exit $rc, expected 1: $out"
	grep -q ': ready ' <<<"$out" && fail "$p said ready without zero copy"
	msg="zero copy required (--zero-copy required), but driver veth of $VETH_SRV on kernel $KREL refused it on queue 0: Operation not supported: the driver has no zero-copy AF_XDP support"
	grep -qF "$msg" <<<"$out" || fail "$p: the message is not the documented one: $out"
	grep -qF 'Use --zero-copy auto to fall back to copy mode' <<<"$out" || fail "$p: no advice in: $out"
	xdp_attached && fail "$p left an XDP program attached after refusing"
done
log "required: paste-echo, paste-wal, paste-kv exit 1 with: $msg"

start_echo "${base[@]}" --port 7 --zero-copy auto
[ "$(stat_field "$(grep -m1 ': ready ' "$ECHO_LOG")" zerocopy)" = 0 ] || fail "auto on veth: zerocopy is not 0"
run_client --connect "$STACK_IP:7" --conns 20 --bytes 64K || fail "echo in copy mode (auto) failed"
line=$(echo_stats)
[ "$(stat_field "$line" zerocopy)" = 0 ] || fail "auto on veth: stats zerocopy is not 0: $line"
stop_echo || fail "paste-echo exited with $ECHO_RC"

start_echo "${base[@]}" --port 7 --zero-copy off
[ "$(stat_field "$(grep -m1 ': ready ' "$ECHO_LOG")" zerocopy)" = 0 ] || fail "off: zerocopy is not 0"
stop_echo || fail "paste-echo exited with $ECHO_RC"

rc=0
out=$(in_srv "$PASTE_BUILD/paste-echo" "${base[@]}" --port 7 --zero-copy always 2>&1) || rc=$?
[ $rc -eq 2 ] || fail "--zero-copy always: exit $rc, expected 2"
grep -qF "invalid value 'always' for --zero-copy: expected auto, required or off" <<<"$out" ||
	fail "--zero-copy always: unclear message: $out"
log "auto and off run in copy mode (zerocopy=0); a bad value is a usage error"
