#!/usr/bin/env bash
# bench.sh - benchmarks on a Release build in build-bench/.
#
#   ./scripts/bench.sh store [SETS] [DIR]   StateStore vs raw SQLite (bench/store_bench.c)
#   ./scripts/bench.sh e2e                  broker -> bridge -> disk, against a bare
#                                           subscriber (the ceiling); writes
#                                           bench/results.json (see cmd_e2e)
#   ./scripts/bench.sh e2e --backend postgresql   the ingest pairs with the
#                                           bridge on a PostgreSQL server of
#                                           its own (see e2e_postgresql)
#   ./scripts/bench.sh history [PHASE...]   the history benchmarks (issue 21,
#                                           scripts/bench_history.sh): query =
#                                           a 24 h range of 1 000 000 rows at
#                                           max_points=500; bytes = disk bytes
#                                           per transition, mode interval vs
#                                           all at 1 000 msg/s; merges
#                                           "history" into bench/results.json
#
# Each subcommand is one function below; add new ones (e.g. e2e) the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${WBMB_BENCH_BUILD:-build-bench}

build() {
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWITH_TESTS=OFF >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target "$@"
}

cmd_store() {
    build store_bench
    # bench/CMakeLists.txt builds it in its own binary folder.
    "$BUILD/bench/store_bench" "$@"
}

source scripts/bench_e2e.sh # cmd_e2e; we are in the repo root
source scripts/bench_profile.sh # phase_profile, print_profile (used by cmd_e2e)
source scripts/bench_history.sh # cmd_history

usage() {
    echo "usage: $0 store [SETS] [DIR] | e2e [--backend sqlite|postgresql] | history [query] [bytes]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
store) cmd_store "$@" ;;
e2e) cmd_e2e "$@" ;;
history) cmd_history "$@" ;;
*) usage ;;
esac
