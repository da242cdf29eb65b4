#!/usr/bin/env bash
# test.sh - README command 2: installs what is missing, builds with
# AddressSanitizer + UndefinedBehaviorSanitizer in build-test/, checks the
# layering (scripts/lint-layers.sh), and runs every unit and integration test
# through ctest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
# chromium and playwright-core for the browser test, installed before ctest so
# a cold install never runs into a test's time limit.
./scripts/deps-browser.sh

BUILD=${WBMB_TEST_BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DWITH_ASAN=ON -DWITH_UBSAN=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# Layering (README "Layers"): an include up a layer or an include cycle
# fails the run before any test.
./scripts/lint-layers.sh

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD"
ctest --output-on-failure -j2 --timeout 600 "$@"
