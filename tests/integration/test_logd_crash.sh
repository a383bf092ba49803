#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# test_logd_crash: kill -9 of paste-logd under load, three times. A paced 48 MiB TCP transfer runs
# through paste-logd while it is killed and restarted; after each restart the log must be recovered
# whole (no cut, frames pinned), forwarding must resume (the transfer completes byte-identical), and
# at the end every frame the server's interface received - those forwarded just before each kill
# included - must be in the log: a frame forwarded but not logged is the failure this test exists
# for.
. "$(dirname "$0")/logd_lib.sh"

start_logd --pool "$POOL" --pool-size 512M
wait_ping
start_capture "$WORK/server.pcap"
transfer 48 8 & # 8 MB/s: about 6 s, so the kills land mid-transfer
tpid=$!
STARTED_PIDS+=("$tpid")
for k in 1 2 3; do
	sleep 1.2
	before=$(logd_stats)
	kill9_logd
	log "kill -9 #$k after next_seq=$(stat_field "$before" next_seq)"
	info=$("$LOGD" info --pool "$POOL") || fail "info after kill -9 failed"
	log "recovered: $info"
	[ "$(stat_field "$info" first_seq)" = 1 ] || fail "records lost: $info"
	[ "$(stat_field "$info" next_seq)" -ge "$(stat_field "$before" next_seq)" ] ||
		fail "the log lost records that were there before the kill: $info vs $before"
	start_logd --pool "$POOL"
	grep -q "($(($(stat_field "$info" next_seq) - 1)) frames pinned" "$LOGD_LOG" ||
		fail "not every logged frame is pinned after restart: $(head -1 "$LOGD_LOG")"
done
wait "$tpid" || fail "the transfer did not survive the kills"
stop_capture
stop_logd
log "$ST"
check_logged "$WORK/server.pcap" 30000
exit 0
