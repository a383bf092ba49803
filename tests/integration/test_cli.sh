#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# paste-echo's command line: usage errors exit 2 with a message on stderr that names the bad option,
# --help documents every option, and the two mistakes an operator is most likely to make (a pool on
# a disk filesystem, a wrong interface name) fail with a message that says what is wrong. No failed
# start may leave an XDP program behind.
. "$(dirname "$0")/lib.sh"
testbed_up

N=0
# echo_cmd ARGS...: run paste-echo in the server namespace (bounded); sets RC, OUT, ERR (files).
echo_cmd() {
	N=$((N + 1))
	OUT=$LOGDIR/cli.$N.out
	ERR=$LOGDIR/cli.$N.err
	RC=0
	timeout 30 ip netns exec "$NS_SRV" "$PASTE_ECHO" "$@" >"$OUT" 2>"$ERR" || RC=$?
	[ $RC -ne 124 ] || fail "paste-echo $* did not exit within 30 s"
}

show() { echo "-- stdout:" >&2; cat "$OUT" >&2; echo "-- stderr:" >&2; cat "$ERR" >&2; }

# usage_error WHAT NEEDLE ARGS...: exit status 2 and NEEDLE (fixed string) on stderr.
usage_error() {
	local what=$1 needle=$2
	shift 2
	echo_cmd "$@"
	[ $RC -eq 2 ] || { show; fail "$what: exit status $RC, expected 2 (usage error)"; }
	[ -s "$ERR" ] || { show; fail "$what: no message on stderr"; }
	grep -qF -- "$needle" "$ERR" || { show; fail "$what: stderr does not mention '$needle'"; }
	log "ok: $what -> 2: $(head -n 1 "$ERR")"
}

OK_ARGS=(--ifname "$VETH_SRV" --ip "$STACK_IP" --pool "$POOL" --pool-size 64M)

echo_cmd
[ $RC -eq 2 ] || { show; fail "no arguments: exit status $RC, expected 2"; }
[ -s "$ERR" ] || fail "no arguments: no message on stderr"
log "ok: no arguments -> 2: $(head -n 1 "$ERR")"

usage_error "--port 0" --port "${OK_ARGS[@]}" --port 0
usage_error "--port 70000" --port "${OK_ARGS[@]}" --port 70000
usage_error "--port abc" --port "${OK_ARGS[@]}" --port abc
usage_error "--pool-size 12Q" --pool-size "${OK_ARGS[@]}" --port 7 --pool-size 12Q
usage_error "unknown option" --no-such-option "${OK_ARGS[@]}" --port 7 --no-such-option
usage_error "--xdp-mode bogus" --xdp-mode "${OK_ARGS[@]}" --port 7 --xdp-mode bogus
[ ! -e "$POOL" ] || fail "a usage error created the pool file $POOL"

echo_cmd --help
[ $RC -eq 0 ] || { show; fail "--help: exit status $RC, expected 0"; }
for o in --ifname --ip --port --pool --pool-size --shared-ip --busy-poll --queue --xdp-mode \
	--max-bytes --help; do
	grep -qE -- "$o([^a-z-]|\$)" "$OUT" || { show; fail "--help does not mention $o"; }
done
log "ok: --help -> 0, mentions every option"

# A pool on a disk filesystem: the kernel refuses to pin its pages as UMEM.
DISK_POOL=/var/tmp/paste-test-$$.pool
CLEANUP_FILES+=("$DISK_POOL")
fstype=$(stat -f -c %T /var/tmp)
if [ "$fstype" = tmpfs ]; then
	log "skip: /var/tmp is tmpfs here, cannot test a pool on a disk filesystem"
else
	echo_cmd --ifname "$VETH_SRV" --ip "$STACK_IP" --port 7 --pool "$DISK_POOL" --pool-size 64M
	[ $RC -ne 0 ] || { show; fail "a pool on $fstype (/var/tmp) was accepted"; }
	grep -qF /dev/shm "$OUT" "$ERR" ||
		{ show; fail "pool on $fstype: the message does not point to /dev/shm"; }
	log "ok: pool on $fstype -> $RC: $(cat "$ERR" "$OUT" | grep -m1 -F /dev/shm)"
	! xdp_attached || fail "an XDP program was left attached after the failed start (disk pool)"
fi

# An interface that does not exist.
BAD_IF=nosuch$$
echo_cmd --ifname "$BAD_IF" --ip "$STACK_IP" --port 7 --pool "$POOL" --pool-size 64M
[ $RC -ne 0 ] || { show; fail "--ifname $BAD_IF (no such interface) was accepted"; }
grep -qF -- "$BAD_IF" "$ERR" || { show; fail "--ifname $BAD_IF: stderr does not name the interface"; }
log "ok: missing interface -> $RC: $(grep -m1 -F -- "$BAD_IF" "$ERR")"
! xdp_attached || fail "an XDP program is attached to $VETH_SRV after failed starts"
