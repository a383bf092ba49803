#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/zerocopy/run.sh SCRIPT: how ctest runs a zero-copy test. Exit 75 from SCRIPT means it saw the
# testbed fault of docs/zero-copy.md ("a zero-copy bind whose TX is dead": the guest's virtio-net
# reports frames sent from the XDP socket, the host's tap receives none; lib.sh's tx_lost_check tells
# it apart from a library fault by that signature). Then SCRIPT runs once more in a new guest, its
# first attempt's logs kept beside (zerocopy-logs/NAME.try1); a second fault fails the test.
set -uo pipefail
script=$1
name=$(basename "$script" .sh)
logs=${PASTE_BUILD:-./build}/Testing/zerocopy-logs
bash "$script"
rc=$?
[ $rc -eq 75 ] || exit $rc
echo "run.sh: $name hit the emulated NIC's dead-TX fault; running it once more in a new guest" >&2
rm -rf "$logs/$name.try1"
cp -a "$logs/$name" "$logs/$name.try1" 2>/dev/null
bash "$script"
rc=$?
[ $rc -eq 75 ] && { echo "run.sh: $name hit the fault twice in a row: failing" >&2; exit 1; }
exit $rc
