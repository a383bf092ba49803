#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-echo on a device-DAX pool, with a stand-in for the device (no real one exists here): a
# character-device node with /dev/zero's numbers, described as a 128 MiB, 2 MiB-aligned device DAX by
# a fake sysfs tree (PASTE_DAX_SYSFS). /dev/zero maps shared as zero-filled memory, so the pool sees
# a blank device: it must format it in place, use all of it (--pool-size is ignored), serve traffic
# from it (every byte checked), exit cleanly and leave the node alone. A character device sysfs does
# not describe as a device DAX is refused with a message. Not persistent: each mapping of /dev/zero
# starts from zeros, so recovery on a device is not tested here (test_pool_dax covers the logic).
. "$(dirname "$0")/lib.sh"
testbed_up

DAXDIR=$(mktemp -d /tmp/paste-devdax-$$.XXXXXX)
trap 'rc=$?; rm -rf -- "$DAXDIR"; (exit $rc); cleanup' EXIT
NODE=$DAXDIR/dax9.0
mknod "$NODE" c 1 5 || { log "skip: mknod failed (needs root and a filesystem without nodev)"; exit 0; }
mkdir -p "$DAXDIR/sys/dev/char/1:5"
echo $((128 << 20)) >"$DAXDIR/sys/dev/char/1:5/size"
echo $((2 << 20)) >"$DAXDIR/sys/dev/char/1:5/align"
export PASTE_DAX_SYSFS=$DAXDIR/sys

# 128 MiB, default 1/8 region area: (128 MiB - 4 KiB superblock - 16 MiB) / 2048 = 57342 frames
# (a 64 MiB pool, as --pool-size asks, would have 28670).
start_echo --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 --pool "$NODE" --pool-size 64M
grep -q "formatted device DAX $NODE" "$ECHO_LOG" || fail "no 'formatted device DAX' message"
grep -q '^paste-echo: ready.* frames=57342$' "$ECHO_LOG" ||
	fail "the pool does not span the whole 128 MiB device: $(grep -m1 ready "$ECHO_LOG")"
run_client --connect "$STACK_IP:7" --conns 50 --bytes 256K --close client --seed 3 --timeout 120 ||
	fail "echo over a device-DAX pool failed"
stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
[ -c "$NODE" ] || fail "the device node $NODE is gone or no longer a character device"
log "ok: blank device formatted whole (57342 frames), 50 x 256 KiB echoed, node kept"

# A character device that is not a device DAX (no sysfs size): refused before anything starts.
rm -f "$DAXDIR/sys/dev/char/1:5/size"
OUT=$LOGDIR/notdax.log
rc=0
timeout 30 ip netns exec "$NS_SRV" "$PASTE_ECHO" --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 \
	--pool "$NODE" >"$OUT" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$OUT" >&2; fail "a non-DAX character device: exit $rc, expected 1"; }
grep -q "not a device DAX" "$OUT" || { cat "$OUT" >&2; fail "no 'not a device DAX' message"; }
! xdp_attached || fail "an XDP program was left attached after the refused pool"
[ -c "$NODE" ] || fail "the refused open removed the node"
log "ok: non-DAX character device -> 1: $(grep -m1 'not a device DAX' "$OUT")"
