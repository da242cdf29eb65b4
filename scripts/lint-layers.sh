#!/usr/bin/env bash
# lint-layers.sh [--table] [ROOT] - fails when an #include goes up the layer
# table or closes a cycle. ROOT is a source tree (default: this repository);
# every .c/.h under ROOT/src and ROOT/include is read.
#
# Layers, top to bottom (a file may include headers of its own layer and of
# the layers below it; the modules of one layer are peers and may include
# each other's public headers):
#   app     src/app.c, src/main.c
#   core    src/core/
#   domain  src/domain/
#   io      src/mirror/, src/store/, src/mqtt/, src/http/ (sinks and I/O)
#   config  src/config/
#   common  src/common/
# A private header src/X/NAME.h belongs to X's layer. A public header
# include/wbmb/NAME.h belongs to the module that implements it: the
# HEADERS table below says which, and is checked against where NAME.c is
# (a header missing from the table, or a table entry that disagrees with
# where its .c is, fails the run: the table cannot go stale silently).
#
# Findings, one a line, exit 1:
#   FILE:LINE: includes HEADER (layer L2) above its own layer L1
#   FILE:LINE: includes HEADER, closing an include cycle: a.h -> b.h -> a.h
#   FILE:LINE: includes HEADER, closing a cycle of private-header includes
#              between modules: x -> y -> x (...)
#   and table problems (unknown header, module directory or top-level file).
# Clean: one "lint-layers: OK ..." line, exit 0. --table prints the layer
# table (with the public headers of each layer) as markdown and exits.
# Needs only bash, coreutils, find, grep and a POSIX awk.
set -euo pipefail

# module -> layer, in layer order (top first).
MODULES='app app
core core
domain domain
mirror io
store io
mqtt io
http io
config config
common common'

# Layer descriptions for --table, top first.
LAYERS='app|src/app.c, src/main.c
core|src/core/
domain|src/domain/
io|src/mirror/, src/store/, src/mqtt/, src/http/ (sinks and I/O; peers)
config|src/config/
common|src/common/'

# Public header include/wbmb/NAME.h -> the module whose NAME.c implements it.
HEADERS='action domain
app app
config config
config_json config
devmgr domain
dispatch domain
ha mirror
http http
http_sink http
lockstat common
log common
mirror mirror
mqttc mqtt
owner common
payload domain
queue core
scenmgr domain
sdnotify core
sink common
state_import store
state_store store
store_sink store
status common
store_lock store
strix common
template common
topic_gate common
topic_tree domain
util common'

usage() {
    sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

table=0
root=""
for arg in "$@"; do
    case $arg in
    --table) table=1 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
        [ -z "$root" ] || usage
        root=$arg
        ;;
    esac
done
[ -n "$root" ] || root=$(cd "$(dirname "$0")/.." && pwd)

if [ "$table" = 1 ]; then
    echo "| Layer (top to bottom) | Sources | Public headers (include/wbmb/) |"
    echo "| --- | --- | --- |"
    while IFS='|' read -r layer src; do
        hdrs=$(awk -v layer="$layer" -v mods="$MODULES" '
            BEGIN { n = split(mods, m, "\n"); for (i = 1; i <= n; i++) { split(m[i], f, " "); lay[f[1]] = f[2] } }
            lay[$2] == layer { printf "%s%s.h", (k++ ? ", " : ""), $1 }' <<<"$HEADERS")
        echo "| $layer | $src | ${hdrs:-} |"
    done <<<"$LAYERS"
    exit 0
fi

[ -d "$root/src" ] || {
    echo "lint-layers: $root has no src/ folder" >&2
    exit 2
}
cd "$root"
dirs=(src)
[ ! -d include ] || dirs+=(include)
files=$(find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
includes=""
if [ -n "$files" ]; then
    # "FILE:LINE:#include ..." for every quoted include; none is fine.
    includes=$(xargs grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' /dev/null <<<"$files" || true)
fi

awk -v mods="$MODULES" -v hdrs="$HEADERS" -v nfiles="$(wc -l <<<"$files")" '
function add(msg) { problems[++np] = msg }
function basename_noext(p,    b) { b = p; sub(/.*\//, "", b); sub(/\.[ch]$/, "", b); return b }
# The module of a file under src/ or include/, "" (and a problem) when none.
function module_of(f,    parts, n, name) {
    if (f in fmod)
        return fmod[f]
    n = split(f, parts, "/")
    if (parts[1] == "include") {
        name = basename_noext(f)
        if (n == 3 && parts[2] == "wbmb" && f ~ /\.h$/) {
            if (name in hmod)
                return fmod[f] = hmod[name]
            add(f ":1: public header not in the HEADERS table of scripts/lint-layers.sh (add it with the module whose " name ".c implements it)")
        } else
            add(f ":1: public headers live in include/wbmb/NAME.h")
        return fmod[f] = ""
    }
    if (n == 2) {
        if (f == "src/app.c" || f == "src/main.c")
            return fmod[f] = "app"
        add(f ":1: a file directly under src/ that is not app.c or main.c: no layer in scripts/lint-layers.sh")
        return fmod[f] = ""
    }
    if (parts[2] in layer)
        return fmod[f] = parts[2]
    add(f ":1: src/" parts[2] "/ is not in the layer table of scripts/lint-layers.sh")
    return fmod[f] = ""
}
function sortkeys(arr, out,    k, n, i, j, t) {
    n = 0
    for (k in arr)
        out[++n] = k
    for (i = 2; i <= n; i++) {
        t = out[i]
        for (j = i - 1; j > 0 && out[j] > t; j--)
            out[j + 1] = out[j]
        out[j + 1] = t
    }
    return n
}
# Depth-first search over graph g (adjacency "adj[g, u]", a SUBSEP list);
# a back edge u -> v closes the cycle stk[pos(v)] .. u -> v.
function dfs(g, u,    parts, n, i, v, j, start, path, key, minj, k) {
    state[g, u] = 1
    stk[++sp] = u
    n = split(adj[g, u], parts, SUBSEP)
    for (i = 1; i <= n; i++) {
        v = parts[i]
        if (v == "")
            continue
        if (state[g, v] == 1) {
            for (j = sp; j > 0 && stk[j] != v; j--)
                ;
            start = j
            # Same cycle found from another start: report it once.
            minj = start
            for (j = start; j <= sp; j++)
                if (stk[j] < stk[minj])
                    minj = j
            key = ""
            for (k = 0; k <= sp - start; k++)
                key = key SUBSEP stk[start + (minj - start + k) % (sp - start + 1)]
            if ((g, key) in seen)
                continue
            seen[g, key] = 1
            path = ""
            for (j = start; j <= sp; j++)
                path = path stk[j] " -> "
            path = path v
            report_cycle(g, u, v, start, path)
        } else if (state[g, v] == 0)
            dfs(g, v)
    }
    sp--
    state[g, u] = 2
}
function report_cycle(g, u, v, start, path,    j, more) {
    if (g == "h") {
        add(where["h", u, v] ": includes " incl["h", u, v] ", closing an include cycle: " path)
        return
    }
    more = ""
    for (j = start; j < sp; j++)
        more = more (more == "" ? "" : "; ") where["m", stk[j], stk[j + 1]] " includes " incl["m", stk[j], stk[j + 1]]
    add(where["m", u, v] ": includes " incl["m", u, v] ", closing a cycle of private-header includes between modules: " path (more == "" ? "" : " (" more ")"))
}
BEGIN {
    rank["common"] = 0; rank["config"] = 1; rank["io"] = 2; rank["domain"] = 3; rank["core"] = 4; rank["app"] = 5
    n = split(mods, m, "\n")
    for (i = 1; i <= n; i++) {
        split(m[i], f, " ")
        layer[f[1]] = f[2]
    }
    n = split(hdrs, m, "\n")
    for (i = 1; i <= n; i++) {
        split(m[i], f, " ")
        hmod[f[1]] = f[2]
    }
    np = 0; nincl = 0
}
FNR == 1 { part++ }
$0 == "" { next }
# First input: the file list.
part == 1 {
    exists[$0] = 1
    mod = module_of($0)
    # The table says where NAME.h is implemented; NAME.c must agree.
    name = basename_noext($0)
    if ($0 ~ /\.c$/ && (name in hmod) && mod != "" && hmod[name] != mod)
        add($0 ":1: implements include/wbmb/" name ".h, which the HEADERS table of scripts/lint-layers.sh puts in module " hmod[name] " (layer " layer[hmod[name]] "): update the table")
    next
}
# Second input: "FILE:LINE:#include "X"".
{
    file = $0; sub(/:.*/, "", file)
    rest = substr($0, length(file) + 2)
    line = rest; sub(/:.*/, "", line)
    x = rest; sub(/^[^"]*"/, "", x); sub(/".*/, "", x)
    fm = module_of(file)
    if (fm == "")
        next
    nincl++
    target = ""; tm = ""; private = 0
    if (x ~ /^wbmb\/[^\/]+\.h$/) {
        name = basename_noext(x)
        if (!(name in hmod)) {
            add(file ":" line ": includes " x ", which is not in the HEADERS table of scripts/lint-layers.sh")
            next
        }
        target = "include/" x; tm = hmod[name]
    } else if (("src/" x) in exists) {
        target = "src/" x; private = 1
    } else {
        d = file; sub(/\/[^\/]*$/, "", d)
        if ((d "/" x) in exists) {
            target = d "/" x; private = 1
        }
    }
    if (target == "")
        next # not in the tree (a generated header): nothing to check
    if (private) {
        tm = module_of(target)
        if (tm == "")
            next
    }
    if (rank[layer[tm]] > rank[layer[fm]])
        add(file ":" line ": includes " x " (layer " layer[tm] ") above its own layer " layer[fm])
    if (file ~ /\.h$/ && target ~ /\.h$/ && !(("h", file, target) in where)) {
        adj["h", file] = adj["h", file] SUBSEP target
        hnodes[file] = 1
        where["h", file, target] = file ":" line
        incl["h", file, target] = x
    }
    if (private && tm != fm && !(("m", fm, tm) in where)) {
        adj["m", fm] = adj["m", fm] SUBSEP tm
        mnodes[fm] = 1
        where["m", fm, tm] = file ":" line
        incl["m", fm, tm] = x
    }
}
END {
    sp = 0
    n = sortkeys(hnodes, order)
    for (i = 1; i <= n; i++)
        if (state["h", order[i]] == 0)
            dfs("h", order[i])
    n = sortkeys(mnodes, morder)
    for (i = 1; i <= n; i++)
        if (state["m", morder[i]] == 0)
            dfs("m", morder[i])
    for (i = 1; i <= np; i++)
        print problems[i]
    if (np > 0) {
        printf "lint-layers: %d problem(s) in %d files, %d includes\n", np, nfiles, nincl
        exit 1
    }
    printf "lint-layers: OK: %d files, %d includes, none up a layer (app > core > domain > mirror|store|mqtt|http > config > common), no include cycle\n", nfiles, nincl
}' <(printf '%s\n' "$files") <(printf '%s\n' "$includes")
