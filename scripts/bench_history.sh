# bench_history.sh - `./scripts/bench.sh history [PHASE...]` (sourced by
# bench.sh, after bench_e2e.sh, whose helpers it uses: e2e_broker,
# gen_config, start_bridge, stop_bridge, check_values, proc_io).
#
#   bytes  the history policy's flash cost (issue 21 point 4): 1 000 msg/s
#          on 100 devices for E2E_HIST_S (30) s into a fresh bridge, once
#          with persistence.history.mode all and once with mode interval
#          (interval_ms E2E_HIST_INTERVAL_MS, 10 000); the figure is the
#          bridge's disk write_bytes (/proc/<pid>/io, so the WAL, its
#          checkpoints into the database and the -shm all count) from just
#          before the load until every device's last value is committed,
#          over the transitions sent. The open intervals that only the
#          stop would write are outside the window (one row per device).
#          Also the history rows each mode kept.
#
# Each phase is a function hist_phase_<name>; with no PHASE every phase
# runs. The figures go into bench/results.json under "history" (other keys
# kept) and are printed.

HIST_PHASES_DEFAULT="bytes"

# hist_bytes_run MODE: sets HB_BYTES (write_bytes per transition), HB_ROWS.
hist_bytes_run() {
    local mode=$1 k=100 rate=1000 secs=${E2E_HIST_S:-30}
    local n=$((rate * secs)) name=hb_$1
    local cfg=$E2E_DIR/$name.yaml db=$E2E_DIR/$name/state.db
    echo "== history bytes, mode $mode: $rate msg/s for $secs s on $k devices" >&2
    gen_config "$cfg" "$name" "$k" "$db"
    python3 - "$cfg" "$mode" "${E2E_HIST_INTERVAL_MS:-10000}" <<'PY'
import sys
f, mode, iv = sys.argv[1], sys.argv[2], sys.argv[3]
t = open(f).read()
t = t.replace("    enabled: true\n", f"    enabled: true\n    mode: {mode}\n    interval_ms: {iv}\n", 1)
open(f, "w").write(t)
PY
    start_bridge "$name" "$cfg" "${name}_dev$((k - 1))"
    sync
    local wb0 wb1
    wb0=$(proc_io "$BPID" write_bytes)
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k "$k" -q 0 -P "$name" -r "$rate" \
        >"$E2E_DIR/${name}_load.out"
    local deadline=$(($(date +%s) + 60))
    until [ "$(check_values "$cfg" "$name" "$k" "$n")" = 0 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "   $name: not every last value committed" >&2; break; }
        sleep 0.2
    done
    wb1=$(proc_io "$BPID" write_bytes)
    stop_bridge "$name"
    HB_N=$n
    HB_BYTES=$(python3 -c "print(round(($wb1-$wb0)/$n,1))")
    HB_ROWS=$(sqlite3 -readonly "$db" "select count(*) from device_state_snapshots")
    echo "   write_bytes/transition $HB_BYTES, history rows kept $HB_ROWS (after the stop)" >&2
}

hist_phase_bytes() {
    hist_bytes_run all
    HR_ALL_BYTES=$HB_BYTES HR_ALL_ROWS=$HB_ROWS HR_N=$HB_N
    hist_bytes_run interval
    HR_INT_BYTES=$HB_BYTES HR_INT_ROWS=$HB_ROWS
    HR_RATIO=$(python3 -c "print(round($HR_INT_BYTES/$HR_ALL_BYTES*100,1) if $HR_ALL_BYTES else 0)")
    HIST_RESULTS+=("bytes=$(printf '{"rate_msg_s": 1000, "devices": 100, "transitions": %s, "interval_ms": %s, "measure": "bridge /proc/<pid>/io write_bytes from before the load until every last value is committed, per transition", "all_bytes_per_transition": %s, "interval_bytes_per_transition": %s, "interval_over_all_percent": %s, "all_rows": %s, "interval_rows": %s}' \
        "$HR_N" "${E2E_HIST_INTERVAL_MS:-10000}" "$HR_ALL_BYTES" "$HR_INT_BYTES" "$HR_RATIO" "$HR_ALL_ROWS" "$HR_INT_ROWS")")
    printf '\n%-52s %10s %10s\n' "history policy, 1 000 msg/s, 100 devices" "all" "interval" >&2
    printf '%-52s %10s %10s\n' "disk bytes written per transition" "$HR_ALL_BYTES" "$HR_INT_BYTES" >&2
    printf '%-52s %10s %10s\n' "history rows kept ($HR_N transitions)" "$HR_ALL_ROWS" "$HR_INT_ROWS" >&2
    printf '%-52s %10s\n' "interval / all" "$HR_RATIO %" >&2
}

# Merges HIST_RESULTS (name=json) into bench/results.json's "history".
hist_write_results() {
    python3 - bench/results.json "${HIST_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}" "${HIST_RESULTS[@]}" <<'PY'
import json, sys, datetime, os
path, commit, items = sys.argv[1], sys.argv[2], sys.argv[3:]
doc = json.load(open(path)) if os.path.exists(path) else {}
h = doc.get("history", {})
for it in items:
    k, v = it.split("=", 1)
    h[k] = json.loads(v)
    h[k]["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    h[k]["git_commit"] = commit
doc["history"] = h
open(path, "w").write(json.dumps(doc, indent=2) + "\n")
PY
    echo "results: bench/results.json (history)" >&2
}

cmd_history() {
    local phases=${*:-$HIST_PHASES_DEFAULT}
    HIST_RESULTS=()
    build wb-mqtt-bridge mqtt_load >/dev/null
    E2E_BUILD=$BUILD
    E2E_BIN=$BUILD/wb-mqtt-bridge
    # On the disk the bridge would use (not tmpfs), so write_bytes is real.
    E2E_DIR=$(mktemp -d "$PWD/$BUILD/hist.XXXXXX")
    trap e2e_cleanup EXIT
    e2e_broker
    local ph
    for ph in $phases; do "hist_phase_$ph"; done
    hist_write_results
}
