#!/usr/bin/env bash
# cross-test.sh ARCH - cross-builds the unit tests for ARCH (arm64: Wiren
# Board 8; armhf: Wiren Board 6/7) and runs them under qemu-user.
#
# What it catches: what differs on ARM from x86-64 - plain char unsigned,
# 32-bit long, size_t and pointers on armhf, alignment, printf formats -
# in the real code, with the real foreign libraries (sqlite3, json-c,
# libyaml, paho, libmicrohttpd of ARCH, from Debian's multiarch packages).
# What it does not: the integration tests (tests/integration/*.sh need the
# host's mosquitto and tools around the binary: not part of this run), the
# kernel of a controller (qemu-user passes system calls to the host's), real
# hardware timing. Not part of scripts/test.sh: it needs a large multiarch
# install (scripts/deps-cross.sh ARCH, run here first).
#
# A Debug build without sanitizers (ASan/UBSan do not run under qemu-user)
# in build-cross-ARCH/, cmake/toolchain-ARCH.cmake, CMAKE_CROSSCOMPILING_EMULATOR
# = qemu-aarch64-static / qemu-arm-static, then `ctest -R '^unit\.'` (every
# cmocka program of tests/unit, the fuzz corpus replays and the power-cut
# test). Prints one line per test and a closing "N passed, N failed".
#
#   ./scripts/cross-test.sh arm64
#   ./scripts/cross-test.sh armhf -R test_store    # extra ctest arguments
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

ARCH=${1:-}
case "$ARCH" in
    arm64) QEMU=qemu-aarch64-static ;;
    armhf) QEMU=qemu-arm-static ;;
    *)
        echo "usage: $0 arm64|armhf [ctest arguments]" >&2
        exit 2
        ;;
esac
shift

if [ "${CROSS_SKIP_DEPS:-0}" != 1 ]; then
    "$ROOT/scripts/deps-cross.sh" "$ARCH"
fi
QEMU_BIN=$(command -v "$QEMU") || { echo "cross-test.sh: $QEMU missing" >&2; exit 1; }

BUILD=${CROSS_BUILD_DIR:-$ROOT/build-cross-$ARCH}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-$ARCH.cmake" \
    -DCMAKE_CROSSCOMPILING_EMULATOR="$QEMU_BIN" -DCMAKE_BUILD_TYPE=Debug \
    -DWITH_ASAN=OFF -DWITH_UBSAN=OFF -DWITH_TESTS=ON >/dev/null
cmake --build "$BUILD" -j2 >/dev/null

# Tests skipped under emulation only, each with its reason (none today:
# add "NAME|reason" lines here, and say why in the report of the change).
SKIPS=()
exclude=""
for s in "${SKIPS[@]}"; do
    name=${s%%|*}
    echo "cross-test.sh: skipping $name under $QEMU: ${s#*|}"
    exclude="${exclude:+$exclude|}^${name}\$"
done

cd "$BUILD"
log=$BUILD/cross-test.log
set +e
# One test at a time (CROSS_JOBS to change): under qemu-user every test runs
# 5-20x slower, and two at once on a busy 2-core machine stretch the
# loopback-TCP waits of test_http's SSE drop check (its dropped client's
# last ~50 KB trickle through a 2 KB receive window; the FIN came 7-35 s
# after the server's shutdown(2), past the test's 10 s) and of test_mqttc's
# drain check beyond their deadlines. Alone, both pass on arm64 and armhf.
# (test_http now widens the dropped client's window once the drop is seen
# and waits up to 90 s for the FIN: it failed natively too at a load average
# of 5 with the old 10 s.)
ctest -R '^unit\.' ${exclude:+-E "$exclude"} --output-on-failure -j"${CROSS_JOBS:-1}" \
    --timeout 900 "$@" >"$log" 2>&1
rc=$?
set -e
# ctest's own lines for each test ("1/30 Test #3: unit.test_x ....   Passed 0.12 sec"),
# then the failures' output.
grep -E '^ *[0-9]+/[0-9]+ Test +#' "$log" || true
if [ $rc -ne 0 ]; then
    echo "--- output of the failed tests (all in $log) ---"
    sed -n '/^The following tests FAILED/,$p' "$log"
    grep -B2 -A40 -E '\*\*\*Failed|\*\*\*Timeout|\*\*\*Exception|Subprocess aborted' "$log" | head -200
fi
passed=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#.* Passed ' "$log" || true)
total=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#' "$log" || true)
failed=$((total - passed))
if [ "$total" -eq 0 ]; then
    echo "cross-test.sh: no test ran (see $log)" >&2
    exit 1
fi
echo "cross-test ($ARCH, $QEMU):"
echo "$passed passed, $failed failed${SKIPS[0]:+, ${#SKIPS[@]} skipped}"
exit $rc
