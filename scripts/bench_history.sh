# bench_history.sh - ./scripts/bench.sh history [PHASE...]: the history
# benchmarks of issue 21, sourced by bench.sh (we are in the repo root).
#
#   query  1 000 000 device_state_snapshots rows (10 devices, one row each
#          every 1.73 s, the last 48 h), filled straight into a SQLite file
#          of the bridge's schema with the CLI (the chains and heads as the
#          backend keeps them), then the real bridge (Release build) answers
#          GET /state-history/sensor3?from=<now-24h>&to=<now>&max_points=500
#          through curl: 50 000 rows into 500 buckets. Median of
#          HISTQ_RUNS (7) runs after one cold run, and the same for the 24 h
#          that ended 24 h ago (the walk passes the newer rows first), a
#          plain limit=100 range query, and for reference the hand-written
#          SQL of the README with the sqlite3 CLI.
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
#
# Prints a table and merges {"history": {"query": ...}} into
# bench/results.json (other keys kept). Phases run in the order given;
# default: every phase.
HISTQ_ROWS=${HISTQ_ROWS:-1000000}
HISTQ_RUNS=${HISTQ_RUNS:-7}

# median of the numbers on stdin
histq_median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# histq_time URL: seconds of one GET (curl's time_total), body to $HQ/body.
histq_time() { curl -s -m 120 -o "$HQ/body" -w '%{time_total}\n' "$1"; }

# histq_runs URL: one cold run, then HISTQ_RUNS; prints "cold_ms median_ms".
histq_runs() {
    local cold med
    cold=$(histq_time "$1")
    med=$(for _ in $(seq "$HISTQ_RUNS"); do histq_time "$1"; done | histq_median)
    python3 -c "print(round($cold*1000,1), round($med*1000,1))"
}

# histq_start / histq_stop: the bridge on $HQ/config.yaml, up when its HTTP
# API answers (503 is fine: there is no broker).
histq_start() {
    "$HQ_BIN" -c "$HQ/config.yaml" >>"$HQ/bridge.log" 2>&1 &
    HQ_PID=$!
    local deadline=$((SECONDS + 60))
    until curl -s -o /dev/null "http://127.0.0.1:$HQ_PORT/health"; do
        [ $SECONDS -lt $deadline ] || { cat "$HQ/bridge.log"; kill "$HQ_PID"; return 1; }
        sleep 0.1
    done
}
histq_stop() {
    kill -TERM "$HQ_PID"
    wait "$HQ_PID" || true
}

history_query() {
    build wb-mqtt-bridge
    HQ=$(mktemp -d /tmp/wbmb_histq.XXXXXX)
    local load0 load1
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    local db="$HQ/state.db"
    HQ_BIN="$BUILD/wb-mqtt-bridge"
    HQ_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    {
        echo "mqtt: {host: 127.0.0.1, port: 1}" # no broker needed: HTTP only
        echo "persistence:"
        echo "  db_path: $db"
        echo "  history: {enabled: true, max_rows_per_device: 0, max_age_days: 0}"
        echo "http: {listen: 127.0.0.1:$HQ_PORT}"
        echo "bridge: {device_id: bench_bridge}"
        echo "devices:"
        for d in $(seq 0 9); do
            echo "  - {id: sensor$d, name: Sensor $d, type: sensor, state: [{topic: bench/sensor$d, type: json}]}"
        done
    } >"$HQ/config.yaml"
    # The schema, made by the bridge itself; then the rows, as the backend
    # appends them: ids in time order, prev_id = the device's previous row.
    histq_start
    histq_stop
    local now_ms span_ms=$((48 * 3600 * 1000)) t0 t1
    now_ms=$(($(date +%s%N) / 1000000))
    t0=$(date +%s%N)
    sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < $HISTQ_ROWS)
INSERT INTO device_state_snapshots(id, device_id, state, ts_ms, prev_id)
SELECT n, 'sensor' || (n % 10),
       json_object('temp', 20 + (n % 97) / 10.0, 'power', n % 2 = 0, 'mode', 'm' || (n % 3)),
       $now_ms - $span_ms + n * $span_ms / $HISTQ_ROWS, CASE WHEN n > 10 THEN n - 10 END
FROM i;
INSERT OR REPLACE INTO device_state_heads(device_id, head_id, rows)
SELECT device_id, max(id), count(*) FROM device_state_snapshots GROUP BY device_id;
COMMIT;
SQL
    t1=$(date +%s%N)
    local fill_s db_mb
    fill_s=$(python3 -c "print(round(($t1-$t0)/1e9,1))")
    db_mb=$(du -m "$db" | cut -f1)
    histq_start
    local base="http://127.0.0.1:$HQ_PORT" day=$((24 * 3600 * 1000)) q_last q_prev q_plain buckets rows_in
    now_ms=$(($(date +%s%N) / 1000000))
    q_last=$(histq_runs "$base/state-history/sensor3?from=$((now_ms - day))&to=$now_ms&max_points=500")
    buckets=$(jq length "$HQ/body")
    rows_in=$(jq '[.[].n] | add' "$HQ/body")
    q_prev=$(histq_runs "$base/state-history/sensor3?from=$((now_ms - 2 * day))&to=$((now_ms - day))&max_points=500")
    q_plain=$(histq_runs "$base/state-history/sensor3?from=$((now_ms - day))&to=$now_ms&limit=100")
    histq_stop
    # The README's hand-written SQL on the same file (Python's sqlite3,
    # median of HISTQ_RUNS, ms).
    local sql_newest sql_naive
    read -r sql_newest sql_naive < <(python3 - "$db" "$((now_ms - day))" "$now_ms" "$HISTQ_RUNS" <<'PY'
import sqlite3, statistics, sys, time
db = sqlite3.connect(sys.argv[1])
lo, hi, runs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def med(sql, args):
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        db.execute(sql, args).fetchall()
        t.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(t), 2)
print(med("SELECT ts, state FROM device_state_snapshots WHERE device_id = ? ORDER BY id DESC LIMIT 10", ("sensor3",)),
      med("SELECT ts, state FROM device_state_snapshots WHERE device_id = ? AND ts_ms BETWEEN ? AND ? ORDER BY id", ("sensor3", lo, hi)))
PY
)
    rm -rf "$HQ"
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    read -r last_cold last_med <<<"$q_last"
    read -r prev_cold prev_med <<<"$q_prev"
    read -r plain_cold plain_med <<<"$q_plain"
    echo
    echo "history query: $HISTQ_ROWS rows of 10 devices over 48 h (filled in ${fill_s} s, ${db_mb} MB), through HTTP (curl time_total)"
    echo "  load average $load0 at the start, $load1 at the end ($(nproc) CPUs)"
    printf '  %-58s %10s %10s\n' "query" "cold ms" "median ms"
    printf '  %-58s %10s %10s\n' "last 24 h, max_points=500 ($rows_in rows -> $buckets buckets)" "$last_cold" "$last_med"
    printf '  %-58s %10s %10s\n' "the 24 h before, max_points=500" "$prev_cold" "$prev_med"
    printf '  %-58s %10s %10s\n' "last 24 h, limit=100 (rows, no buckets)" "$plain_cold" "$plain_med"
    printf '  %-58s %21s\n' "sqlite3: ORDER BY id DESC LIMIT 10 (one device)" "$sql_newest"
    printf '  %-58s %21s\n' "sqlite3: WHERE device_id AND ts_ms BETWEEN (no index: a scan)" "$sql_naive"
    python3 - bench/results.json <<PY
import json, sys, datetime, os
p = sys.argv[1]
r = json.load(open(p)) if os.path.exists(p) else {}
h = r.setdefault("history", {})
h["query"] = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "rows": $HISTQ_ROWS, "devices": 10, "span_h": 48, "via": "HTTP, curl time_total",
    "runs": $HISTQ_RUNS, "rows_in_range": $rows_in, "buckets": $buckets,
    "last_24h_max_points_500_ms": {"cold": $last_cold, "median": $last_med},
    "previous_24h_max_points_500_ms": {"cold": $prev_cold, "median": $prev_med},
    "last_24h_limit_100_ms": {"cold": $plain_cold, "median": $plain_med},
    "sqlite3_newest_10_ms": $sql_newest, "sqlite3_naive_range_ms": $sql_naive,
    "loadavg_at_start": "$load0", "loadavg_at_end": "$load1",
}
json.dump(r, open(p, "w"), indent=2)
open(p, "a").write("\n")
PY
}

# The bytes phase (the policy's flash cost): its own broker, build and
# work folder, the e2e helpers of bench_e2e.sh.
history_bytes() {
    HIST_RESULTS=()
    build wb-mqtt-bridge mqtt_load >/dev/null
    E2E_BUILD=$BUILD
    E2E_BIN=$BUILD/wb-mqtt-bridge
    # On the disk the bridge would use (not tmpfs), so write_bytes is real.
    E2E_DIR=$(mktemp -d "$PWD/$BUILD/hist.XXXXXX")
    trap e2e_cleanup EXIT
    e2e_broker
    hist_phase_bytes
    hist_write_results
    e2e_cleanup
    trap - EXIT
}


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
    local phases=("$@")
    [ ${#phases[@]} -gt 0 ] || phases=(query bytes)
    for p in "${phases[@]}"; do
        case "$p" in
        query) history_query ;;
        bytes) history_bytes ;;
        *)
            echo "bench.sh history: unknown phase '$p' (query, bytes)" >&2
            return 2
            ;;
        esac
    done
}
