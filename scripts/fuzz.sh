#!/usr/bin/env bash
# fuzz.sh [SECONDS] - builds the libFuzzer targets of tests/fuzz/ with clang
# (ASan + UBSan + coverage) in build-fuzz/ and runs each one for SECONDS
# (default 300) on its committed seeds (tests/fuzz/corpus/<name>/) plus a
# working corpus kept in build-fuzz/corpus/<name>/. Prints a table
# (target, runs, corpus size, findings) and exits non-zero when a target
# crashed, leaked, timed out or could not be built. Findings are written to
# build-fuzz/artifacts/<name>/; copy a reproducer into tests/fuzz/corpus/<name>/
# once it is fixed, so the normal test build replays it for ever.
#
# Environment: WBMB_FUZZ_BUILD (build folder, default build-fuzz),
# WBMB_FUZZ_TARGETS (space-separated subset, e.g. "config payload").
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-300}
BUILD=${WBMB_FUZZ_BUILD:-build-fuzz}
SRC=$(pwd)

command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (scripts/deps.sh installs it)" >&2; exit 1; }
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DWITH_FUZZ=ON -DWITH_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD" -j2 --target fuzz >"$BUILD/fuzz-build.log" 2>&1 ||
    { tail -n 40 "$BUILD/fuzz-build.log" >&2; echo "fuzz.sh: build failed" >&2; exit 1; }

targets=${WBMB_FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//' | tr '\n' ' ')}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
rows=()
for t in $targets; do
    bin="$BUILD/tests/fuzz/fuzz_$t"
    work="$BUILD/corpus/$t"
    art="$BUILD/artifacts/$t"
    log="$BUILD/fuzz-$t.log"
    mkdir -p "$work" "$art"
    [ -x "$bin" ] || { echo "fuzz.sh: no target $bin" >&2; exit 1; }
    rc=0
    # -max_len: room for a 64 KiB payload or body; -timeout: a slow input is a finding.
    "$bin" -max_total_time="$SECONDS_EACH" -max_len=70000 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "$work" "$SRC/tests/fuzz/corpus/$t" \
        >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(find "$work" -type f | wc -l)
    findings=$(find "$art" -type f | wc -l)
    if [ "$rc" -ne 0 ] || [ "$findings" -gt 0 ]; then
        status=1
        echo "fuzz.sh: $t failed (exit $rc); log $log, artifacts in $art" >&2
        grep -E "ERROR|SUMMARY|runtime error|deadly signal|abort" "$log" | head -n 5 >&2 || true
    fi
    rows+=("$t ${runs:-?} $corpus $findings")
done

printf '%-14s %12s %8s %9s\n' target runs corpus findings
for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-14s %12s %8s %9s\n' $r
done
exit $status
