#!/usr/bin/env bash
# test_fuzz_short.sh - runs every libFuzzer target of tests/fuzz/ for 20 s
# (scripts/fuzz.sh 20), building or reusing build-fuzz/ in the source tree.
# clang with libFuzzer is a dependency (scripts/deps.sh installs it): when it
# is missing this test fails, it does not skip.
set -euo pipefail
: "${WBMB_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' \
    >"${TMPDIR:-/tmp}/wbmb-fuzz-probe.$$.c"
if ! clang -fsanitize=fuzzer,address,undefined "${TMPDIR:-/tmp}/wbmb-fuzz-probe.$$.c" \
    -o "${TMPDIR:-/tmp}/wbmb-fuzz-probe.$$" 2>&1; then
    rm -f "${TMPDIR:-/tmp}/wbmb-fuzz-probe.$$"*
    echo "not ok - clang with libFuzzer is not usable (run scripts/deps.sh)"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/wbmb-fuzz-probe.$$"*
echo "ok - clang with libFuzzer works"

if WBMB_FUZZ_BUILD="$WBMB_SOURCE_DIR/build-fuzz" "$WBMB_SOURCE_DIR/scripts/fuzz.sh" "${WBMB_FUZZ_SECONDS:-20}"; then
    echo "ok - every fuzz target ran ${WBMB_FUZZ_SECONDS:-20} s without a finding"
else
    echo "not ok - a fuzz target failed (see above)"
    exit 1
fi
