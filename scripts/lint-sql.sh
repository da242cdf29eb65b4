#!/usr/bin/env bash
# lint-sql.sh [DIR...] - fails when SQL could be built from strings at run
# time instead of going through prepared statements with bound parameters.
# Checks every .c/.h file under DIR (default: src/):
#   - the SQL argument of sqlite3_exec / sqlite3_prepare* (and of libpq's
#     pq->exec / pq->prepare, src/store/pq_api.h) must be a string
#     literal (or a ?: of literals), an element of a `static const` table of
#     literals in the same file (`NAME[i]`, `ptr->field` of a loop over such
#     a table, a `static const char NAME[]` literal, `NAME[i].field` of a
#     const struct table of literals in any linted file), or a parameter of a
#     static helper whose every caller passes one of those. A `*_for_test`
#     hook that nothing in DIR calls is reported, not failed;
#   - no sqlite3_mprintf / sqlite3_snprintf / sqlite3_vmprintf at all;
#   - no printf-family format that starts like SQL, and no SQL-looking
#     literal holding a printf conversion (%s, %d, ...).
# Exit 0 clean, 1 with one "FILE:LINE: reason" per finding.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- src
exec python3 - "$@" <<'PY'
import os, re, sys

SQL_START = re.compile(r'^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|REPLACE|WITH|BEGIN|ATTACH)\b')
LIT = r'"(?:[^"\\\n]|\\.)*"'
ONLY_LITS = re.compile(r'^\s*(?:%s\s*)+$' % LIT)
TERNARY_LITS = re.compile(r'^[^?]*\?\s*(?:%s\s*)+:\s*(?:%s\s*)+$' % (LIT, LIT))
PRINTF_CONV = re.compile(r'%[-+ #0]*[0-9*]*(?:\.[0-9*]+)?(?:hh|h|ll|l|z|j|t)?[sdiuxXfgeqQwc]')
CALL = re.compile(r'\b(sqlite3_exec|sqlite3_prepare(?:_v2|_v3|16|16_v2|16_v3)?|pq->exec|pq->prepare)\s*\(')
SQL_ARG = {'pq->prepare': 2}  # the SQL's position; 1 for the others
BANNED = re.compile(r'\b(sqlite3_mprintf|sqlite3_snprintf|sqlite3_vmprintf|sqlite3_vsnprintf)\s*\(')
PRINTF = re.compile(r'\b(v?s?n?printf|v?asprintf)\s*\(')

def strip_comments(t):
    out, i, n = [], 0, len(t)
    while i < n:
        if t.startswith('/*', i):
            j = t.find('*/', i + 2); j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', t[i:j])); i = j
        elif t.startswith('//', i):
            j = t.find('\n', i); j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif t[i] in '"\'':
            q = t[i]; j = i + 1
            while j < n and t[j] != q:
                j += 2 if t[j] == '\\' else 1
            out.append(t[i:j + 1]); i = j + 1
        else:
            out.append(t[i]); i += 1
    return ''.join(out)

def split_args(t, start):
    """t[start] is just after '('; returns (list of args, end index)."""
    depth, i, cur, args = 0, start, [], []
    while i < len(t):
        c = t[i]
        if c in '"\'':
            q = c; j = i + 1
            while j < len(t) and t[j] != q:
                j += 2 if t[j] == '\\' else 1
            cur.append(t[i:j + 1]); i = j + 1; continue
        if c in '([{': depth += 1
        elif c in ')]}':
            if depth == 0:
                args.append(''.join(cur).strip()); return args, i
            depth -= 1
        elif c == ',' and depth == 0:
            args.append(''.join(cur).strip()); cur = []; i += 1; continue
        cur.append(c); i += 1
    return args, i

def line_of(t, pos): return t.count('\n', 0, pos) + 1

def const_tables(t):
    """names of static const string tables/strings/struct tables made of literals only"""
    names = set()
    for m in re.finditer(r'(?:static\s+)?const\s+(?:char|struct\s+\w+)\s*(?:\*\s*const\s*)?(\w+)\s*\[[^\]]*\]\s*=\s*', t):
        body_start = m.end()
        if t[body_start] == '{':
            depth, j = 0, body_start
            while True:
                if t[j] == '{': depth += 1
                elif t[j] == '}':
                    depth -= 1
                    if depth == 0: break
                elif t[j] == '"':
                    k = j + 1
                    while t[k] != '"': k += 2 if t[k] == '\\' else 1
                    j = k
                j += 1
            body = t[body_start:j + 1]
        else:
            j = body_start
            while t[j] != ';':
                if t[j] == '"':
                    k = j + 1
                    while t[k] != '"': k += 2 if t[k] == '\\' else 1
                    j = k
                j += 1
            body = t[body_start:j]
        rest = re.sub(LIT, '', body)
        rest = re.sub(r'\[\s*\w+\s*\]\s*=', '', rest)  # designated [W_X] = ...
        if re.fullmatch(r'[\s{},0-9]*(?:(?:NULL|STR\(\w+\))[\s{},0-9]*)*', rest):
            names.add(m.group(1))
    return names

def enclosing_function(t, pos):
    best = None
    for m in re.finditer(r'^(?:static\s+)?[\w \*]+?\b(\w+)\s*\(([^;{)]*)\)\s*\{', t, re.M):
        if m.group(1) in ('if', 'for', 'while', 'switch', 'return'):
            continue  # `if (...) {` at the start of a line is not a function
        if m.start() < pos: best = m
        else: break
    if not best: return None, []
    params = [p.strip().split()[-1].lstrip('*') for p in best.group(2).split(',') if p.strip() and p.strip() != 'void']
    return best.group(1), params

files = []
for root in sys.argv[1:]:
    if os.path.isfile(root): files.append(root); continue
    for d, _, fs in os.walk(root):
        files += [os.path.join(d, f) for f in fs if f.endswith(('.c', '.h'))]
texts = {f: strip_comments(open(f, encoding='utf-8', errors='replace').read()) for f in sorted(files)}
findings, notes = [], []

# Tables defined without `static` are shared between files (a backend's
# statement tables): every linted file may name them.
shared_tables = set()
for _f, _t in texts.items():
    for _m in re.finditer(r'^const\s+struct\s+\w+\s+(\w+)\s*\[', _t, re.M):
        if _m.group(1) in const_tables(_t):
            shared_tables.add(_m.group(1))

def arg_ok(f, t, arg, pos, depth=0):
    tables = const_tables(t) | shared_tables
    arg = arg.strip()
    if ONLY_LITS.match(arg) or TERNARY_LITS.match(arg):
        return True, None
    if arg == 'NULL' and depth > 0:
        return True, None  # a caller passing no table at all
    m = re.fullmatch(r'(\w+)(?:\s*\[[^\]]+\])?', arg)
    if m and m.group(1) in tables:
        return True, None
    mf = re.fullmatch(r'(\w+)\s*\[[^\]]+\]\s*\.\s*\w+', arg)
    if mf:
        if mf.group(1) in tables:
            return True, None
        arg = mf.group(1)  # a table passed in: followed through the callers below
    m = re.fullmatch(r'(\w+)\s*->\s*\w+', arg)
    if m:
        loop = re.search(r'for\s*\(\s*const\s+struct\s+\w+\s*\*\s*%s\s*=\s*(\w+)\s*;' % m.group(1), t[:pos])
        if loop and loop.group(1) in tables:
            return True, None
    fn, params = enclosing_function(t, pos)
    if m is None and re.fullmatch(r'\w+', arg) and fn and arg in params and depth < 4:
        idx = params.index(arg)
        callers = []
        for g, gt in texts.items():
            for c in re.finditer(r'\b%s\s*\(' % re.escape(fn), gt):
                if gt[max(0, c.start() - 2):c.start()] in ('->',) or gt[c.start() - 1:c.start()] == '.':
                    continue  # a member of the same name (pq->prepare)
                if re.match(r'[\w \*]*$', gt[gt.rfind('\n', 0, c.start()) + 1:c.start()]) and \
                   gt[c.end():].lstrip().startswith(('struct', 'sqlite3', 'const', 'int', 'char', 'PGconn')):
                    continue  # the definition or a prototype
                args, _ = split_args(gt, c.end())
                callers.append((g, gt, args, c.start()))
        callers = [c for c in callers if c[1][c[3]-1:c[3]] != '*']
        if not callers:
            if fn.endswith('_for_test'):
                return True, '%s: test hook %s() takes SQL from its caller; nothing under the linted folders calls it' % (f, fn)
            return False, 'SQL comes from parameter %r of %s(), which nothing calls' % (arg, fn)
        for g, gt, args, cpos in callers:
            if idx >= len(args):
                return False, 'cannot read the call of %s() at %s:%d' % (fn, g, line_of(gt, cpos))
            ok, why = arg_ok(g, gt, args[idx], cpos, depth + 1)
            if not ok:
                return False, '%s() gets its SQL from %s:%d (%s)' % (fn, g, line_of(gt, cpos), why or args[idx])
        return True, None
    return False, 'SQL argument %r is not a literal or a static const table of literals' % arg

for f, t in texts.items():
    for m in CALL.finditer(t):
        if t[m.start()-1:m.start()] in ('_',) : continue
        args, _ = split_args(t, m.end())
        k = SQL_ARG.get(m.group(1), 1)
        if len(args) <= k: continue
        ok, why = arg_ok(f, t, args[k], m.start())
        if not ok:
            findings.append('%s:%d: %s: %s' % (f, line_of(t, m.start()), m.group(1), why))
        elif why:
            notes.append(why)
    for m in BANNED.finditer(t):
        findings.append('%s:%d: %s builds SQL text at run time' % (f, line_of(t, m.start()), m.group(1)))
    for m in PRINTF.finditer(t):
        args, _ = split_args(t, m.end())
        for a in args[:3]:
            lits = re.findall(LIT, a)
            if lits and SQL_START.match(lits[0][1:-1]):
                findings.append('%s:%d: %s with an SQL format string' % (f, line_of(t, m.start()), m.group(1)))
                break
    for m in re.finditer(LIT, t):
        s = m.group(0)[1:-1]
        if SQL_START.match(s) and PRINTF_CONV.search(s):
            findings.append('%s:%d: SQL text with a printf conversion: %s' % (f, line_of(t, m.start()), s[:60]))

for n in sorted(set(notes)):
    print('lint-sql: note: ' + n)
for x in findings:
    print(x)
print('lint-sql: %d files, %d findings' % (len(texts), len(findings)))
sys.exit(1 if findings else 0)
PY
