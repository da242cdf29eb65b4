#!/usr/bin/env bash
# reliability.sh - the long forms of the crash and fault tests, with a table.
#
#   ./scripts/reliability.sh [CRASH_ROUNDS] [POWER_CUTS]   (default 50, 1000)
#
# Builds with AddressSanitizer + UndefinedBehaviorSanitizer (Debug) in
# build-reliab/ - slower than Release, but a crash or a memory error under
# faults is exactly what this is looking for - then runs:
#   - test_powercut POWER_CUTS (the real store on the crash VFS, power cuts
#     that drop or tear unsynced writes, several sync settings, and kill -9)
#   - tests/reliability/crash.sh CRASH_ROUNDS   (kill -9, commit_interval_ms 50)
#   - tests/reliability/crash.sh CRASH_ROUNDS/5 (kill -9, commit_interval_ms 0)
#   - test_fault_broker.sh with 20 broker kills
#   - test_fault_disk_full.sh and test_fault_readonly.sh, 3 times each
#   - test_fault_corrupt_db.sh and test_reload.sh once
# and prints a Markdown table: what was tried, how many times, failed checks,
# what was lost. Logs go to build-reliab/reliability-logs/. Exits non-zero
# when any check failed. Needs root for the tmpfs and chattr faults (they
# report SKIP otherwise). Takes about 5-10 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

./scripts/deps.sh
ROUNDS=${1:-50}
POWER_CUTS=${2:-1000}
BUILD=${WBMB_RELIAB_BUILD:-build-reliab}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DWITH_ASAN=ON -DWITH_UBSAN=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target wb-mqtt-bridge --target test_powercut

export WBMB_BIN=$ROOT/$BUILD/wb-mqtt-bridge WBMB_SOURCE_DIR=$ROOT
export WBMB_TEST_DATA=$ROOT/tests/data WBMB_BUILD_DIR=$ROOT/$BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
LOGS=$BUILD/reliability-logs
mkdir -p "$LOGS"

ROWS=()
FAILED=0
# run NAME WHAT TIMES COMMAND...: runs it TIMES times, one table row.
run() {
    local name=$1 what=$2 times=$3
    shift 3
    local fails=0 passes=0 lost="" summary="" i log t0 secs
    t0=$(date +%s)
    for ((i = 1; i <= times; i++)); do
        log=$LOGS/$name.$i.log
        echo "== $name ($i/$times): $*"
        "$@" >"$log" 2>&1 || true
        local line
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
        if [ -z "$line" ]; then
            fails=$((fails + 1))
            echo "   no result line (crashed?): see $log"
        else
            passes=$((passes + ${line%% passed*}))
            local f=${line#*, }
            fails=$((fails + ${f%% failed}))
        fi
        summary=$(grep '^# SUMMARY' "$log" | tail -1 | sed 's/^# SUMMARY [^ ]* //' || true)
        lost+="${summary:+$summary; }"
        grep -E '^(not ok|# reconnect|# SKIP)' "$log" | sed 's/^/   /' || true
        echo "   $line"
    done
    secs=$(($(date +%s) - t0))
    [ "$fails" -eq 0 ] || FAILED=1
    ROWS+=("| $what | $times | $passes | $fails | ${lost%; } | ${secs} s |")
}

run powercut "power cuts (crash VFS: unsynced writes dropped or torn per 512-byte sector), kill -9, and a clean close before a cut: 7 settings" 1 \
    "$BUILD/tests/test_powercut" "$POWER_CUTS"
run crash "kill -9 at random moments under load (20 devices x 25 msg/s, commit_interval_ms 50)" 1 \
    bash tests/reliability/crash.sh "$ROUNDS"
r0=$((ROUNDS / 5 < 10 ? 10 : ROUNDS / 5))
run crash0 "kill -9 at random moments, commit_interval_ms 0 (synchronous=FULL)" 1 \
    env WBMB_CRASH_COMMIT_MS=0 WBMB_CRASH_RATE=10 bash tests/reliability/crash.sh "$r0"
run broker "broker SIGKILLed and restarted under load" 1 \
    env WBMB_BROKER_ROUNDS=20 bash tests/integration/test_fault_broker.sh
run diskfull "disk full (filled tmpfs) while running, then space freed" 3 \
    bash tests/integration/test_fault_disk_full.sh
run readonly "database made immutable (chattr +i) while running, then writable" 3 \
    bash tests/integration/test_fault_readonly.sh
run corrupt "garbage / truncated / garbage-page database at start; torn -wal" 1 \
    bash tests/integration/test_fault_corrupt_db.sh
run reload "config made invalid (bad values, broken YAML) before SIGHUP" 1 \
    bash tests/integration/test_reload.sh

echo
echo "Reliability run of $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
    "ASan+UBSan Debug build): ./scripts/reliability.sh $ROUNDS $POWER_CUTS"
echo
echo "| what was tried | runs | checks passed | checks failed | per run: counts and losses | time |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
echo
echo "Power cuts by setting (test_powercut $POWER_CUTS):"
echo
grep '^|' "$LOGS/powercut.1.log" || true
exit "$FAILED"
