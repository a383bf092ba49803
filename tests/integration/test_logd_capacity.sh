#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_logd_capacity: the capacity policy. A 32 MiB pool holds ~14k frames; a 40 MiB transfer
# (~30k frames) through paste-logd logging everything must still arrive byte-identical (forwarding
# never stops), the oldest records must have been dropped (evicted > 0, first_seq > 1), the log must
# hold the newest frames (the last frames the server received are in the export), and a restart
# must recover the truncated log whole.
. "$(dirname "$0")/logd_lib.sh"

start_logd --pool "$POOL" --pool-size 32M --ring-size 256
wait_ping
start_capture "$WORK/server.pcap"
transfer 40
stop_capture
stop_logd
log "$ST"
[ "$(stat_field "$ST" evicted)" -gt 10000 ] || fail "nothing (or too little) evicted: $ST"
[ "$(stat_field "$ST" tx_full)" = 0 ] || fail "frames dropped: $ST"
info=$("$LOGD" info --pool "$POOL")
log "$info"
[ "$(stat_field "$info" first_seq)" = $(($(stat_field "$ST" evicted) + 1)) ] || fail "head does not match the evictions"
[ "$(stat_field "$info" cut)" = no ] || fail "truncated log does not recover whole: $info"
"$LOGD" export --pool "$POOL" >"$WORK/log.pcapng" || fail "export failed"
# The newest 2000 frames the server received are all in the log.
$TOOL tail 2000 "$WORK/server.pcap" >"$WORK/tail.pcap"
$TOOL subset "$WORK/tail.pcap" "$WORK/log.pcapng" >"$WORK/subset.txt" || fail "newest frames missing: $(cat "$WORK/subset.txt")"
log "newest 2000: $(cat "$WORK/subset.txt")"
start_logd --pool "$POOL" --pool-size 32M --ring-size 256
wait_ping
stop_logd
exit 0
