#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-echo with its pool on hugetlbfs (2 MiB pages, the page size a device-DAX pool is mapped
# with in production; bench/compare --huge): the pool file is created there (fallocate, no
# ftruncate/pwrite), mapped, registered as AF_XDP UMEM and serves traffic (every byte checked);
# after a restart the same file is reopened, not recreated. A size that is not a multiple of the
# huge page size is refused with a message naming the page size. Reserves 16 huge pages
# (/proc/sys/vm/nr_hugepages) and mounts a private hugetlbfs; both are undone at exit. Skipped
# (with a message) when the kernel cannot reserve the pages or mount hugetlbfs.
. "$(dirname "$0")/lib.sh"

SYSCTL=/proc/sys/vm/nr_hugepages
NEED=16
[ -w "$SYSCTL" ] ||
	{ log "skip: $SYSCTL not writable (needs root and a kernel with hugetlbfs)"; exit 0; }
OLD=$(cat "$SYSCTL")
HDIR=$(mktemp -d /tmp/paste-hugetlbfs-$$.XXXXXX)
MOUNTED=0
undo_huge() {
	[ $MOUNTED = 1 ] && { rm -f -- "$HDIR"/*; umount "$HDIR" && MOUNTED=0; }
	[ $MOUNTED = 0 ] && rmdir -- "$HDIR"
	echo "$OLD" >"$SYSCTL"
}
# the servers first (their mappings hold the pages), then the mount and the sysctl, then
# lib.sh's cleanup
trap 'rc=$?; for p in "${STARTED_PIDS[@]+"${STARTED_PIDS[@]}"}"; do kill_pid "$p"; done
undo_huge; (exit $rc); cleanup' EXIT
echo $((OLD + NEED)) >"$SYSCTL"
FREE=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
[ "$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)" = 2048 ] ||
	{ log "skip: the default huge page size is not 2 MiB"; exit 0; }
[ "${FREE:-0}" -ge $NEED ] ||
	{ log "skip: the kernel reserved only ${FREE:-0} of $NEED huge pages (fragmented?)"; exit 0; }
mount -t hugetlbfs -o pagesize=2M none "$HDIR" || { log "skip: cannot mount hugetlbfs"; exit 0; }
MOUNTED=1
testbed_up
POOL=$HDIR/echo.pool

# 24 MiB = 12 huge pages (the default rings need 8448 frames): created, mapped, registered as
# UMEM, echoes 20 x 128 KiB intact.
start_echo --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 --pool "$POOL" --pool-size 24M
grep -q "created pool $POOL" "$ECHO_LOG" || fail "no 'created pool' message: $(cat "$ECHO_LOG")"
[ "$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)" -le $((FREE - 12)) ] ||
	fail "the pool file does not hold 12 huge pages"
run_client --connect "$STACK_IP:7" --conns 20 --bytes 128K --close client --seed 5 --timeout 120 ||
	fail "echo over a hugetlbfs pool failed"
stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
log "ok: 24 MiB pool on hugetlbfs created, 20 x 128 KiB echoed over AF_XDP"

# Reopened, not recreated.
start_echo --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 --pool "$POOL"
grep -q "created pool" "$ECHO_LOG" && fail "the pool was recreated instead of reopened"
run_client --connect "$STACK_IP:7" --conns 4 --bytes 64K --close client --seed 6 --timeout 120 ||
	fail "echo over the reopened hugetlbfs pool failed"
stop_echo || fail "paste-echo exited with status $ECHO_RC after SIGTERM (expected 0)"
log "ok: reopened and served again"

# 9 MiB is not whole 2 MiB pages: refused, with the page size and a size that would do.
rm -f -- "$POOL"
OUT=$LOGDIR/unaligned.log
rc=0
timeout 30 ip netns exec "$NS_SRV" "$PASTE_ECHO" --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 \
	--pool "$POOL" --pool-size 9M >"$OUT" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$OUT" >&2; fail "a 9 MiB pool on hugetlbfs: exit $rc, expected 1"; }
grep -q "on hugetlbfs with 2097152-byte pages.*e.g. 10485760" "$OUT" ||
	{ cat "$OUT" >&2; fail "no message naming the huge page size"; }
! xdp_attached || fail "an XDP program was left attached after the refused pool"
log "ok: 9 MiB refused: $(grep -m1 hugetlbfs "$OUT")"
