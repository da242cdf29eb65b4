#!/usr/bin/env bash
# test_lint_sql.sh - every SQL statement of src/ is a compile-time constant
# run through sqlite3_exec/prepare (values are bound): scripts/lint-sql.sh
# passes on src/ and catches each kind of string-built SQL in a bad sample.
set -euo pipefail
: "${WBMB_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
fails=0
if "$WBMB_SOURCE_DIR/scripts/lint-sql.sh"; then echo "ok - src/ passes lint-sql"; else echo "not ok - src/ fails lint-sql"; fails=1; fi
out=$("$WBMB_SOURCE_DIR/scripts/lint-sql.sh" "$WBMB_SOURCE_DIR/tests/data/lint" || true)
for want in "sqlite3_exec: SQL argument 'sql'" "sqlite3_prepare_v2: SQL argument 'q'" \
    "run() gets its SQL" "sqlite3_mprintf builds SQL" "snprintf with an SQL format" \
    "SQL text with a printf conversion" "pq->exec: SQL argument 'sql'" "pq->prepare: SQL comes from parameter 'key'"; do
    if grep -qF "$want" <<<"$out"; then echo "ok - bad sample: $want"; else echo "not ok - bad sample not caught: $want"; fails=1; fi
done
exit $fails
