#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# tests/fuzz/run.sh - build the libFuzzer targets (clang, PASTE_FUZZ=ON) and run each for a bounded
# time over its committed corpus. CI calls it from scripts/test when clang is present.
#
#   tests/fuzz/run.sh [TARGET...]        (default: every target)
#
# FUZZ_SECONDS (30) per target; FUZZ_BUILD (build-fuzz) the build tree; FUZZ_JOBS (1) parallel
# fuzzing processes per target (-fork); FUZZ_PARALLEL (CPUs / FUZZ_JOBS) targets fuzzed at once,
# each with its own CPU for its whole FUZZ_SECONDS; FUZZ_MERGE=1 merges new coverage into the
# committed corpus (a maintainer's step, reviewed like any change). A crash leaves its input in
# $FUZZ_BUILD/fuzz-artifacts/<target>/ and makes the script exit 1: reproduce it with
#   $FUZZ_BUILD/tests/fuzz/fuzz_<target> <file>
# then add it to tests/fuzz/regressions/<target>/ once fixed (tests/fuzz/pending/ until then).
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-30}
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-1}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(netif http resp pool_open index_recovery)
CC_FUZZ=$(command -v clang || command -v clang-14 || true)
if [ -z "$CC_FUZZ" ]; then
	echo "fuzz: clang not found: install clang and libclang-rt-14-dev" >&2
	exit 2
fi

mkdir -p "$BUILD" # the configure log goes inside it: the suite leaves no untracked file behind
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DPASTE_FUZZ=ON >"$BUILD/configure.log" 2>&1 || {
	cat "$BUILD/configure.log" >&2
	exit 1
}
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target \
	"${TARGETS[@]/#/fuzz_}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
CPUS=$(nproc 2>/dev/null || echo 1)
PARALLEL=${FUZZ_PARALLEL:-$((CPUS / JOBS > 0 ? CPUS / JOBS : 1))}

# fuzz_one TARGET: fuzz it for SECONDS_EACH over its corpus; prints its summary (or failure) lines.
fuzz_one() {
	local t=$1 work="$BUILD/fuzz-corpus/$1" art="$BUILD/fuzz-artifacts/$1" fork=() rc=0
	mkdir -p "$work" "$art"
	[ "$JOBS" -le 1 ] || fork=(-fork="$JOBS")
	printf '==== fuzz %s: %s s ====\n' "$t" "$SECONDS_EACH"
	if "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=25 \
		-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$art/" "${fork[@]}" \
		"$work" "tests/fuzz/corpus/$t" >"$BUILD/fuzz-$t.log" 2>&1; then
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
			"$BUILD/fuzz-$t.log" | tr '\n' ' '
		grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$BUILD/fuzz-$t.log" | tail -n 1
	else
		echo "fuzz $t: FAILED (log $BUILD/fuzz-$t.log, input in $art/)"
		grep -E 'ERROR|runtime error|invariant failed' "$BUILD/fuzz-$t.log" | head -n 5
		rc=1
	fi
	if [ "${FUZZ_MERGE:-0}" = 1 ]; then
		"$BUILD/tests/fuzz/fuzz_$t" -merge=1 "tests/fuzz/corpus/$t" "$work" \
			>"$BUILD/fuzz-$t.merge.log" 2>&1
	fi
	return $rc
}

# PARALLEL targets at a time (each in the background, its summary in a file); the summaries are
# printed in target order once all have ended.
STATUS=0
declare -A PIDS=()
for t in "${TARGETS[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done
	fuzz_one "$t" >"$BUILD/fuzz-$t.summary" 2>&1 &
	PIDS[$t]=$!
done
for t in "${TARGETS[@]}"; do
	wait "${PIDS[$t]}" || STATUS=1
	cat "$BUILD/fuzz-$t.summary"
done
exit $STATUS
