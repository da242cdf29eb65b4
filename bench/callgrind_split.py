#!/usr/bin/env python3
"""callgrind_split.py - a callgrind output file's self cost by component.

    callgrind_split.py CALLGRIND_OUT MESSAGES

Prints one JSON object: for each component (the shared object the code
lives in, grouped: ours = the wb-mqtt-bridge binary, paho, libc, sqlite,
json-c, ...) the instructions executed in it (its self cost, not what it
calls), per message, and the system calls counted (callgrind's
--collect-systime: sysCount, the calls the code made into the kernel).

Only the parts of the format a dump without --dump-instr or jumps has are
read: ob=/fn= set where self cost goes (names are compressed as "(N) name"
the first time and "(N)" after), a "calls=" line is followed by one line of
inclusive cost that belongs to the callee and is skipped, and every other
line that starts with a digit, '+', '-' or '*' is a position followed by
the event counts.
"""
import json
import os
import re
import sys

COMPONENTS = [
    ("ours", re.compile(r"wb-mqtt-bridge$")),
    ("paho", re.compile(r"libpaho-mqtt")),
    ("sqlite", re.compile(r"libsqlite3")),
    ("json-c", re.compile(r"libjson-c")),
    ("libc", re.compile(r"libc\.so|libm\.so|libpthread|librt\.so")),
    ("ssl", re.compile(r"libssl|libcrypto")),
    ("yaml", re.compile(r"libyaml")),
    ("microhttpd", re.compile(r"libmicrohttpd")),
    ("loader", re.compile(r"ld-linux")),
    ("valgrind", re.compile(r"vgpreload|valgrind")),
]


VDSO = re.compile(r"clock_gettime|gettimeofday|__time\b|:time$|getcpu")


def component(obj):
    base = os.path.basename(obj)
    for name, rx in COMPONENTS:
        if rx.search(base):
            return name
    return "other"


by_fn = {}  # (component, function) -> self costs, for --top


def split(path):
    names = {}
    events = []
    sc = None
    totals = {}
    ob = "???"
    fn = "???"
    vdso = 0
    by_fn.clear()
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            if not line or line == "\n":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                costs = [int(x) for x in parts[1:]]
                acc = totals.setdefault(component(ob), [0] * len(events))
                for i, v in enumerate(costs[: len(events)]):
                    acc[i] += v
                if sc is not None and len(costs) > sc and VDSO.search(fn):
                    vdso += costs[sc]
                fa = by_fn.setdefault((component(ob), fn), [0] * len(events))
                for i, v in enumerate(costs[: len(events)]):
                    fa[i] += v
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
                sc = events.index("sysCount") if "sysCount" in events else None
            elif line.startswith("ob="):
                ob = resolve(names, "ob", line[3:].strip())
            elif line.startswith("fn="):
                fn = resolve(names, "fn", line[3:].strip())
            elif line.startswith(("cob=", "cfn=", "cfi=", "cfl=", "fl=", "fi=", "fe=")):
                key, _, val = line.partition("=")
                # Keep the compression tables complete; only ob matters here.
                resolve(names, "ob" if key == "cob" else "fn" if key in ("fn", "cfn") else "fl", val.strip())
            elif line.startswith("calls="):
                skip_next = True
    return events, totals, vdso


def resolve(names, kind, val):
    m = re.match(r"\((\d+)\)\s*(.*)", val)
    if not m:
        return val
    ident, name = m.group(1), m.group(2)
    table = names.setdefault(kind, {})
    if name:
        table[ident] = name
        return name
    return table.get(ident, "???")


def main():
    if sys.argv[1] == "--top":
        # callgrind_split.py --top FILE MESSAGES [N]: the N functions with
        # the most self cost, and those making system calls, per message.
        path, messages = sys.argv[2], int(sys.argv[3])
        n = int(sys.argv[4]) if len(sys.argv) > 4 else 25
        events, _, _ = split(path)
        ir = events.index("Ir")
        sc = events.index("sysCount") if "sysCount" in events else None
        rows = sorted(by_fn.items(), key=lambda kv: -kv[1][ir])[:n]
        for (comp, fn), v in rows:
            print("%10.1f  %-8s %s" % (v[ir] / messages, comp, fn))
        if sc is not None:
            print("system calls per message:")
            for (comp, fn), v in sorted(by_fn.items(), key=lambda kv: -kv[1][sc])[:12]:
                if v[sc]:
                    print("%10.3f  %-8s %s" % (v[sc] / messages, comp, fn))
        return
    path, messages = sys.argv[1], int(sys.argv[2])
    events, totals, vdso = split(path)
    ir = events.index("Ir") if "Ir" in events else 0
    sc = events.index("sysCount") if "sysCount" in events else None
    all_ir = sum(v[ir] for v in totals.values())
    out = {
        "messages": messages,
        "instructions": all_ir,
        "instructions_per_msg": round(all_ir / messages, 1),
        "syscalls": sum(v[sc] for v in totals.values()) if sc is not None else None,
        "components": {},
    }
    if sc is not None:
        # Under valgrind the clock reads are system calls; natively they
        # are vDSO calls that never enter the kernel: counted apart.
        out["clock_reads_per_msg"] = round(vdso / messages, 3)
        out["syscalls_per_msg"] = round((out["syscalls"] - vdso) / messages, 3)
    for name, v in sorted(totals.items(), key=lambda kv: -kv[1][ir]):
        if v[ir] == 0:
            continue
        row = {"instructions_per_msg": round(v[ir] / messages, 1), "percent": round(100 * v[ir] / max(all_ir, 1), 1)}
        if sc is not None:
            row["syscalls_per_msg"] = round(v[sc] / messages, 3)
        out["components"][name] = row
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
