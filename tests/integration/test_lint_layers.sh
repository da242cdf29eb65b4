#!/usr/bin/env bash
# test_lint_layers.sh - scripts/lint-layers.sh on small fake trees built
# here (no binary, no broker): a clean tree passes; an include up a layer,
# a header include cycle, a cycle of private-header includes between two
# modules, a public header missing from the table and a .c in another
# module than the table says each fail with their FILE:LINE line; --table
# prints the layer table. The real tree is linted by scripts/test.sh.
set -euo pipefail
: "${WBMB_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
LINT=$WBMB_SOURCE_DIR/scripts/lint-layers.sh
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wbmb-lint-layers.XXXXXX")
trap 'rm -rf "$T_DIR"' EXIT
fails=0
ok() { echo "ok - $*"; }
bad() {
    echo "not ok - $*"
    fails=1
}

# put TREE FILE LINE...: writes FILE of TREE with one line per argument.
put() {
    local tree=$1 file=$2
    shift 2
    mkdir -p "$(dirname "$T_DIR/$tree/$file")"
    printf '%s\n' "$@" >"$T_DIR/$tree/$file"
}

# A clean tree: every layer, downward includes only, peers of the io layer
# including each other's public headers, a header included by its own .c.
clean() {
    local t=$1
    put "$t" include/wbmb/util.h '#include <stddef.h>'
    put "$t" include/wbmb/config.h '#include "wbmb/util.h"'
    put "$t" include/wbmb/state_store.h '#include "wbmb/config.h"'
    put "$t" include/wbmb/mqttc.h '#include "wbmb/state_store.h"'
    put "$t" include/wbmb/devmgr.h '#include "wbmb/mqttc.h"'
    put "$t" include/wbmb/queue.h '#include "wbmb/devmgr.h"'
    put "$t" include/wbmb/app.h '#include "wbmb/queue.h"'
    put "$t" src/common/util.c '#include "wbmb/util.h"' '#include <string.h>'
    put "$t" src/config/config.c '#include "wbmb/config.h"' '#include "config/config_walk.h"'
    put "$t" src/config/config_walk.h '#include "wbmb/util.h"'
    put "$t" src/store/state_store.c '#include "wbmb/state_store.h"' '#include "wbmb/mqttc.h"'
    put "$t" src/mqtt/mqttc.c '#include "wbmb/mqttc.h"' '#include "wbmb/state_store.h"' \
        '#include "mqtt/mqttc_int.h"'
    put "$t" src/mqtt/mqttc_int.h '#include "wbmb/mqttc.h"' '#include "config/config_walk.h"'
    put "$t" src/domain/devmgr.c '#include "wbmb/devmgr.h"' '#include "generated_table.h"'
    put "$t" src/core/queue.c '#include "wbmb/queue.h"' '#include "core/core.h"'
    put "$t" src/core/core.h '#include "wbmb/devmgr.h"'
    put "$t" src/app.c '#include "wbmb/app.h"' '#include "core/core.h"'
    put "$t" src/main.c '#include "wbmb/app.h"'
}

# run TREE: the script's output in $out, its exit status in $rc.
run() {
    rc=0
    out=$("$LINT" "$T_DIR/$1" 2>&1) || rc=$?
}

# expect TREE WHAT LINE: the script fails on TREE and prints LINE.
expect() {
    run "$1"
    if [ "$rc" = 1 ] && grep -qxF -- "$3" <<<"$out"; then
        ok "$2"
    else
        bad "$2 (exit $rc; want: $3)"
        sed 's/^/# /' <<<"$out"
    fi
}

clean ok
run ok
if [ "$rc" = 0 ] && grep -q '^lint-layers: OK: ' <<<"$out" && [ "$(wc -l <<<"$out")" = 1 ]; then
    ok "a clean tree passes with one OK line"
else
    bad "a clean tree passes (exit $rc)"
    sed 's/^/# /' <<<"$out"
fi

clean up
put up src/common/util.c '#include "wbmb/util.h"' '#include "wbmb/config.h"'
put up src/store/state_store.c '#include "wbmb/state_store.h"' '#include "core/core.h"'
expect up "common including config is up a layer" \
    "src/common/util.c:2: includes wbmb/config.h (layer config) above its own layer common"
expect up "io including a core private header is up a layer" \
    "src/store/state_store.c:2: includes core/core.h (layer core) above its own layer io"
if grep -q '^lint-layers: 2 problem(s)' <<<"$out"; then ok "both are counted"; else bad "both are counted"; fi

clean hcycle
put hcycle src/store/a.h '#include "store/b.h"'
put hcycle src/store/b.h '#include <stdio.h>' '#include "store/a.h"'
expect hcycle "a header include cycle fails" \
    "src/store/b.h:2: includes store/a.h, closing an include cycle: src/store/a.h -> src/store/b.h -> src/store/a.h"

# A tree without include/ (private headers only), a cycle of three.
put bare src/store/a.h '#include "store/b.h"'
put bare src/store/b.h '#include "store/c.h"'
put bare src/store/c.h '#include "store/a.h"'
expect bare "a three-header cycle in a tree without include/ fails" \
    "src/store/c.h:1: includes store/a.h, closing an include cycle: src/store/a.h -> src/store/b.h -> src/store/c.h -> src/store/a.h"

clean mcycle
put mcycle src/http/http_int.h '#include "wbmb/util.h"'
put mcycle src/http/http.c '#include "http/http_int.h"' '#include "mqtt/mqttc_int.h"'
put mcycle src/mqtt/mqttc_send.c '#include "http/http_int.h"'
expect mcycle "modules including each other's private headers fail" \
    "src/mqtt/mqttc_send.c:1: includes http/http_int.h, closing a cycle of private-header includes between modules: http -> mqtt -> http (src/http/http.c:2 includes mqtt/mqttc_int.h)"

clean table
put table include/wbmb/nowhere.h '#include "wbmb/util.h"'
put table src/domain/devmgr.c '#include "wbmb/devmgr.h"' '#include "wbmb/nowhere.h"'
put table src/domain/util.c '#include "wbmb/util.h"'
put table src/gui/gui.c '#include "wbmb/util.h"'
expect table "a public header missing from the table fails" \
    "include/wbmb/nowhere.h:1: public header not in the HEADERS table of scripts/lint-layers.sh (add it with the module whose nowhere.c implements it)"
expect table "including a header missing from the table fails" \
    "src/domain/devmgr.c:2: includes wbmb/nowhere.h, which is not in the HEADERS table of scripts/lint-layers.sh"
expect table "a .c in another module than the table says fails" \
    "src/domain/util.c:1: implements include/wbmb/util.h, which the HEADERS table of scripts/lint-layers.sh puts in module common (layer common): update the table"
expect table "an unknown module directory fails" \
    "src/gui/gui.c:1: src/gui/ is not in the layer table of scripts/lint-layers.sh"

tbl=$("$LINT" --table)
if grep -qF '| app | src/app.c, src/main.c | app.h |' <<<"$tbl" &&
    grep -qF '| common | src/common/ |' <<<"$tbl" && [ "$(wc -l <<<"$tbl")" = 8 ]; then
    ok "--table prints the six layers as markdown"
else
    bad "--table prints the six layers as markdown"
    sed 's/^/# /' <<<"$tbl"
fi
exit $fails
