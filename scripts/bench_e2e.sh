# bench_e2e.sh - `scripts/bench.sh e2e`: the end-to-end benchmark (sourced by
# bench.sh, which provides build() and runs from the repo root).
#
# One run, one fresh mosquitto (own config on a free loopback port,
# max_queued_messages 0 so a slow subscriber loses nothing), five phases
# (ceiling and ingest run as E2E_PAIRS pairs, see phase_pairs):
#
#   ceiling  bench/mqtt_sink counts E2E_N msgs of bench/mqtt_load (QoS 0,
#            E2E_K devices, full speed): first publish -> last received.
#   ingest   the same load into wb-mqtt-bridge (history on, commit 100 ms,
#            wb_mirror on): first publish -> device_state_snapshots max(id)
#            reaches E2E_N (bench/commit_wait); then SIGTERM and the
#            `stats:` line; zero lost = applied == N and every device's
#            stored value equals its last sequence number.
#   latency  5 000 msg/s for ~10 s after 1 s of warm-up at that rate;
#            mqtt_load -L times publish -> the bridge's mirror publication
#            of the seq (p50/p99/max); the warm-up's max is shown apart.
#   io       1 000 msg/s on 100 devices for ~20 s: /proc/<pid>/io
#            write_bytes delta per transition, commits/s from the stats
#            line, fsync/fdatasync calls/s counted by strace -c, the sync
#            policy's WAL syncs/s (stats line).
#   io_slow  the same at 10 msg/s on 100 devices for E2E_IO_SLOW_S (60) s.
#   big      10 000 devices: state imported with `state import`, start-up
#            restore time (log line) and wall time to `MQTT connected`,
#            then one message per device and the peak RSS (VmHWM).
#   ha       the Home Assistant sink's cost: E2E_HA_N (100 000) msgs at full
#            speed with the sink off and on (twice each, interleaved), and
#            1 000 msg/s on 100 devices for E2E_HA_S (15) s off and on: bridge
#            CPU per message from /proc/<pid>/stat.
#   profile  instructions per message under callgrind, split by component
#            (paho, libc, SQLite, json-c, ours) with the system calls counted,
#            for a flood and a steady rate (scripts/bench_profile.sh).
#
# Prints a table (figure beside its target) and writes bench/results.json.
#
# `scripts/bench.sh e2e --backend postgresql` instead runs only the pairs
# (ceiling, then ingest) with the bridge on PostgreSQL: a server of its own
# (tests/tools/pg.sh: PostgreSQL 15 in a temp folder on the same disk,
# fsync and synchronous_commit on, 127.0.0.1), emptied before each ingest;
# commit_wait polls max(id) over libpq. Prints the ratio against the same
# run's ceiling and the commits per second (the stats line's commits over
# the ingest time); no results.json.
# Knobs (environment): E2E_N, E2E_K, E2E_LAT_RATE, E2E_LAT_S, E2E_IO_S, E2E_IO_SLOW_S,
# E2E_BIG_K, E2E_PAIRS, E2E_MIRROR_MS (bridge.mirror_min_interval_ms of every phase but
# latency, which uses 0; unset = the daemon's default), E2E_SYNC_MS
# (persistence.sync_interval_ms of every phase; unset = the default),
# E2E_PROTOCOL (mqtt.protocol of every phase, "5" or "3.1.1"; unset = the default),
# WBMB_APPLY_IN_PLACE=0 (passed to the daemon: every message through the
# queue, for the comparison in bench/RESULTS.md),
# E2E_KEEP=1 keeps the work folder; E2E_ONLY="io big" runs only
# those phases (no table, no results.json); E2E_IO_SQL (experiments
# only) runs one SQL statement on the io database before its load.

E2E_BIN=""
E2E_DIR=""
E2E_PORT=""
E2E_PIDS=()

e2e_cleanup() {
    local pid
    for pid in "${E2E_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${E2E_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${E2E_KEEP:-0}" = 1 ]; then echo "work files kept in $E2E_DIR" >&2; else rm -rf "$E2E_DIR"; fi
}

now_us() { echo $(($(date +%s%N) / 1000)); }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# kv FILE KEY: the value of a key=value line.
kv() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# wait_until TIMEOUT_S COMMAND...: polls every 20 ms.
wait_until() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

e2e_broker() {
    E2E_PORT=$(free_port)
    cat >"$E2E_DIR/mosquitto.conf" <<CONF
listener $E2E_PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
persistence false
set_tcp_nodelay true
CONF
    mosquitto -c "$E2E_DIR/mosquitto.conf" >"$E2E_DIR/mosquitto.log" 2>&1 &
    E2E_PIDS+=($!)
    wait_until 20 mosquitto_pub -h 127.0.0.1 -p "$E2E_PORT" -t wbmb/ping -m x ||
        { echo "mosquitto did not start" >&2; cat "$E2E_DIR/mosquitto.log" >&2; return 1; }
}

# gen_config FILE PREFIX K DB [MIRROR_MS]: K devices PREFIX_dev<i>; even ones
# take a plain int on PREFIX/dev<i>/value (field value), odd ones a JSON
# object on PREFIX/dev<i>/json (fields seq and t). bridge.mirror_min_interval_ms
# is MIRROR_MS, else E2E_MIRROR_MS, else left out (the daemon's default).
# GEN_HA=1 turns the Home Assistant sink on; GEN_COMMIT_MS (100) is
# persistence.commit_interval_ms.
gen_config() {
    local file=$1 prefix=$2 k=$3 db=$4 mirror=${5:-${E2E_MIRROR_MS:-}}
    python3 - "$file" "$prefix" "$k" "$db" "$E2E_PORT" "$mirror" "${E2E_SYNC_MS:-}" "${GEN_HA:-0}" "${GEN_COMMIT_MS:-100}" <<'PY'
import os, sys
f, prefix, k, db, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
pg = ""
if os.environ.get("E2E_PG_CONNINFO"):
    pg = (f"\n  backend: postgresql\n  postgresql:\n    conninfo: \"{os.environ['E2E_PG_CONNINFO']}\""
          f"\n    password_file: {os.environ['E2E_PG_PWFILE']}\n    site: {prefix}")
mirror = f"\n  mirror_min_interval_ms: {int(sys.argv[6])}" if sys.argv[6] else ""
sync = f"\n  sync_interval_ms: {int(sys.argv[7])}" if sys.argv[7] else ""
proto = f"\n  protocol: \"{os.environ['E2E_PROTOCOL']}\"" if os.environ.get("E2E_PROTOCOL") else ""
out = [f"""mqtt:
  host: 127.0.0.1
  port: {port}
  client_id: wbmb-bench-{prefix}
  keepalive_s: 30{proto}
persistence:
  db_path: {db}
  commit_interval_ms: {int(sys.argv[9])}{sync}{pg}
  history:
    enabled: true
    max_rows_per_device: 10000
    max_age_days: 30
http:
  listen: ""
log:
  level: info
bridge:
  device_id: {prefix}_bridge{mirror}
"""]
if sys.argv[8] == "1":
    out.append(f"homeassistant:\n  enabled: true\n  node_id: {prefix}\n  base_topic: {prefix}_ha\n")
out.append("devices:\n")
for i in range(k):
    if i % 2 == 0:
        st = f"      - topic: {prefix}/dev{i}/value\n        field: value\n        type: int\n"
    else:
        st = f"      - topic: {prefix}/dev{i}/json\n        type: json\n"
    out.append(f"  - id: {prefix}_dev{i}\n    name: dev{i}\n    type: bench\n    wb_mirror: true\n    state:\n{st}")
open(f, "w").write("".join(out))
PY
}

# start_bridge NAME CONFIG: starts the bridge, logs to NAME.log, sets BPID and
# BSTART_US; waits until it is connected and subscribed (its last device's
# retained meta is on the broker, published after the SUBSCRIBE).
start_bridge() {
    local name=$1 cfg=$2 last=$3
    BSTART_US=$(now_us)
    "$E2E_BIN" -c "$cfg" >"$E2E_DIR/$name.log" 2>&1 &
    BPID=$!
    E2E_PIDS+=("$BPID")
    wait_until 60 grep -q "MQTT connected" "$E2E_DIR/$name.log" ||
        { echo "bridge $name did not connect" >&2; tail "$E2E_DIR/$name.log" >&2; return 1; }
    BCONN_US=$(now_us)
    wait_until 60 mosquitto_sub -h 127.0.0.1 -p "$E2E_PORT" -t "/devices/$last/meta" -C 1 -W 1 --retained-only ||
        { echo "bridge $name did not publish its devices" >&2; return 1; }
}

# stop_bridge NAME: SIGTERM, wait, leaves the stats line's fields in ST_*.
stop_bridge() {
    kill -TERM "$BPID"
    local rc=0
    wait "$BPID" || rc=$?
    [ "$rc" = 0 ] || echo "bridge $1 exited with $rc" >&2
    local line
    line=$(grep -o 'stats: .*' "$E2E_DIR/$1.log" | tail -n 1)
    for f in received applied unchanged rejected unknown dropped queue_full_waits commits rows_written syncs published coalesced; do
        printf -v "ST_$f" '%s' "$(echo "$line" | grep -o "$f=[0-9]*" | cut -d= -f2)"
    done
}

# check_values CONFIG PREFIX K N: prints how many devices do NOT hold their
# last sequence number in the store.
check_values() {
    local cfg=$1 prefix=$2 k=$3 n=$4
    "$E2E_BIN" -c "$cfg" state export | python3 -c '
import json, sys
prefix, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
st = json.load(sys.stdin)
bad = 0
for i in range(k):
    last = n // k + (1 if i < n % k else 0)
    v = st.get(f"device:{prefix}_dev{i}", {})
    got = v.get("value" if i % 2 == 0 else "seq")
    if last and got != last:
        bad += 1
print(bad)' "$prefix" "$k" "$n"
}

proc_io() { sed -n "s/^$2: //p" "/proc/$1/io"; }

phase_ceiling() {
    echo "== ceiling: bare subscriber, $E2E_N msgs, $E2E_K devices, QoS 0" >&2
    "$E2E_BUILD/bench/mqtt_sink" -p "$E2E_PORT" -t 'ceil/#' -n "$E2E_N" -q 0 >"$E2E_DIR/sink.out" &
    local spid=$!
    E2E_PIDS+=("$spid")
    wait_until 20 grep -q ready "$E2E_DIR/sink.out"
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$E2E_N" -k "$E2E_K" -q 0 -P ceil >"$E2E_DIR/ceil_load.out"
    wait "$spid" || true
    local start last count
    start=$(kv "$E2E_DIR/ceil_load.out" start_us)
    last=$(kv "$E2E_DIR/sink.out" last_us)
    count=$(kv "$E2E_DIR/sink.out" count)
    R_CEIL_COUNT=$count
    R_CEIL_RATE=$(python3 -c "print(round($count*1e6/($last-$start)))")
    echo "   received $count, $R_CEIL_RATE msg/s" >&2
}

phase_ingest() {
    echo "== ingest: bridge, $E2E_N msgs, $E2E_K devices, QoS 0, history on, commit 100 ms" >&2
    local cfg=$E2E_DIR/ingest.yaml db=$E2E_DIR/ingest/state.db
    rm -rf "$E2E_DIR/ingest" # each pair starts from an empty store
    local wait_db=$db
    if [ -n "${E2E_PG_CONNINFO:-}" ]; then
        "$E2E_PGSH" psql "$E2E_PG" "DO \$\$ BEGIN IF to_regclass('state_store') IS NOT NULL THEN
            TRUNCATE state_store, device_state_snapshots, command_logs, device_connection_logs,
            devices RESTART IDENTITY; END IF; END \$\$" >/dev/null
        wait_db="postgresql:$E2E_PG_CONNINFO"
    fi
    gen_config "$cfg" bench "$E2E_K" "$db"
    start_bridge ingest "$cfg" "bench_dev$((E2E_K - 1))"
    PGPASSWORD=${E2E_PG_PASSWORD:-} "$E2E_BUILD/bench/commit_wait" "$wait_db" "$E2E_N" 120 5 >"$E2E_DIR/commit.out" &
    local cpid=$!
    E2E_PIDS+=("$cpid")
    local t_start cpu0 cpu1
    cpu0=$(awk '{print $14+$15}' "/proc/$BPID/stat")
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$E2E_N" -k "$E2E_K" -q 0 -P bench >"$E2E_DIR/ingest_load.out"
    wait "$cpid" || echo "   commit_wait timed out" >&2
    cpu1=$(awk '{print $14+$15}' "/proc/$BPID/stat")
    t_start=$(kv "$E2E_DIR/ingest_load.out" start_us)
    local done_us rows
    done_us=$(kv "$E2E_DIR/commit.out" done_us)
    rows=$(kv "$E2E_DIR/commit.out" rows)
    R_INGEST_SECS=$(python3 -c "print(($done_us-$t_start)/1e6)")
    R_INGEST_RATE=$(python3 -c "print(round($rows*1e6/($done_us-$t_start)))")
    R_INGEST_CPU=$(python3 -c "print(round(($cpu1-$cpu0)/$(getconf CLK_TCK)/$R_INGEST_SECS*100))")
    R_INGEST_CPU_US=$(python3 -c "print(round(($cpu1-$cpu0)/$(getconf CLK_TCK)/max($rows,1)*1e6,1))")
    R_INGEST_ROWS=$rows
    R_PUB_RATE=$(kv "$E2E_DIR/ingest_load.out" pub_rate)
    stop_bridge ingest
    R_INGEST_APPLIED=$ST_applied
    R_INGEST_DROPPED=$ST_dropped
    R_INGEST_REJECTED=$ST_rejected
    R_INGEST_COMMITS=$ST_commits
    R_INGEST_COMMITS_S=$(python3 -c "print(round(${ST_commits:-0}/$R_INGEST_SECS, 1))")
    R_INGEST_STATS=$(grep -o 'stats: .*' "$E2E_DIR/ingest.log" | tail -n 1)
    R_INGEST_BADVAL=$(check_values "$cfg" bench "$E2E_K" "$E2E_N")
    R_INGEST_LOST=$((E2E_N - ${ST_applied:-0}))
    echo "   committed $rows in $R_INGEST_SECS s = $R_INGEST_RATE msg/s (bridge CPU $R_INGEST_CPU %, $R_INGEST_CPU_US us/msg)" >&2
    echo "   $R_INGEST_STATS; devices with a wrong final value: $R_INGEST_BADVAL" >&2
}

# E2E_PAIRS (default 3) x (ceiling, then ingest) on the same broker; the
# pair with the median ratio is the one the table shows, every pair's ratio
# is listed beside it, and a message lost in any pair counts. The 2 CPUs
# are shared with other work: one pair alone swings by +-10 %, as the
# ceiling and the ingest see different neighbours.
phase_pairs() {
    local i pairs=() lost=0 bad=0
    for ((i = 1; i <= E2E_PAIRS; i++)); do
        echo "== pair $i of $E2E_PAIRS" >&2
        phase_ceiling
        phase_ingest
        local r
        r=$(python3 -c "print(round($R_INGEST_RATE/$R_CEIL_RATE*100,1))")
        pairs+=("$r $R_CEIL_RATE $R_CEIL_COUNT $R_INGEST_RATE $R_INGEST_SECS $R_INGEST_CPU $R_INGEST_ROWS ${R_PUB_RATE:-0} ${R_INGEST_APPLIED:-0} ${R_INGEST_DROPPED:-0} ${R_INGEST_REJECTED:-0} ${R_INGEST_COMMITS:-0} $R_INGEST_CPU_US $R_INGEST_COMMITS_S")
        printf '%s\n' "$R_INGEST_STATS" >"$E2E_DIR/pair$i.stats"
        lost=$((lost + R_INGEST_LOST))
        bad=$((bad + R_INGEST_BADVAL))
        echo "   pair $i: bridge / ceiling $r %" >&2
    done
    R_RATIOS=$(printf '%s\n' "${pairs[@]}" | awk '{print $1}' | paste -sd, | sed 's/,/, /g')
    local med
    med=$(printf '%s\n' "${pairs[@]}" | awk '{print NR, $0}' | sort -k2,2g | awk -v n="${#pairs[@]}" 'NR == int((n + 1) / 2)')
    local idx
    read -r idx R_RATIO R_CEIL_RATE R_CEIL_COUNT R_INGEST_RATE R_INGEST_SECS R_INGEST_CPU R_INGEST_ROWS R_PUB_RATE \
        R_INGEST_APPLIED R_INGEST_DROPPED R_INGEST_REJECTED R_INGEST_COMMITS R_INGEST_CPU_US \
        R_INGEST_COMMITS_S <<<"$med"
    R_CPU_US_ALL=$(printf '%s\n' "${pairs[@]}" | awk '{print $13}' | paste -sd, | sed 's/,/, /g')
    R_INGEST_STATS=$(cat "$E2E_DIR/pair$idx.stats")
    R_INGEST_LOST=$lost
    R_INGEST_BADVAL=$bad
}

phase_latency() {
    # One second of warm-up at the same rate first: a bridge just started
    # (and paho's receive threads on both sides) shows one-off stalls of up
    # to ~100 ms in its first second; they are reported on their own.
    local warm=$E2E_LAT_RATE
    local n=$((E2E_LAT_RATE * E2E_LAT_S + warm))
    echo "== latency: $E2E_LAT_RATE msg/s for $E2E_LAT_S s (after 1 s of warm-up) on $E2E_K devices" >&2
    local cfg=$E2E_DIR/lat.yaml db=$E2E_DIR/lat/state.db
    # The mirror publication is where "applied" is observed: no interval may
    # hold it back (0 = every change goes out at once, the bridge's most
    # expensive setting).
    gen_config "$cfg" lat "$E2E_K" "$db" 0
    start_bridge lat "$cfg" "lat_dev$((E2E_K - 1))"
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k "$E2E_K" -q 0 -P lat -r "$E2E_LAT_RATE" -L \
        -w "$warm" >"$E2E_DIR/lat.out" || echo "   a device's last value was not seen (lost)" >&2
    stop_bridge lat
    R_LAT_P50=$(kv "$E2E_DIR/lat.out" lat_p50_us)
    R_LAT_P99=$(kv "$E2E_DIR/lat.out" lat_p99_us)
    R_LAT_MAX=$(kv "$E2E_DIR/lat.out" lat_max_us)
    R_LAT_MISSING=$(kv "$E2E_DIR/lat.out" lat_missing)
    R_LAT_WARM_MAX=$(kv "$E2E_DIR/lat.out" lat_warm_max_us)
    # Not seen is not lost: a device's value replaced by its next one
    # before the sender got to it goes out once, the newer (the outbox
    # coalesces retained topics), so the older has no mirror to time.
    R_LAT_COALESCED=${ST_coalesced:-None}
    R_LAT_SUPERSEDED=$(kv "$E2E_DIR/lat.out" lat_superseded)
    R_LAT_LOST=$(kv "$E2E_DIR/lat.out" lat_lost)
    R_LAT_N=$((n - warm))
    echo "   p50 $R_LAT_P50 us, p99 $R_LAT_P99 us, max $R_LAT_MAX us, not seen $R_LAT_MISSING: superseded $R_LAT_SUPERSEDED (a newer value of the device was seen; the bridge coalesced $R_LAT_COALESCED retained publications), lost $R_LAT_LOST; warm-up max $R_LAT_WARM_MAX us" >&2
}

# io_run RATE SECONDS NAME: RATE msg/s on 100 devices for SECONDS into a
# fresh bridge (commit 100 ms, the default sync_interval_ms); sets IO_*:
# disk write_bytes per transition (/proc/<pid>/io), commits/s, all
# fsync+fdatasync calls/s (strace -c: the sync policy's WAL syncs and the
# checkpoints' own) and the sync policy's syncs/s (the stats line).
io_run() {
    local rate=$1 k=100 n=$(($1 * $2)) name=$3
    echo "== $name: $rate msg/s for $2 s on $k devices" >&2
    local cfg=$E2E_DIR/$name.yaml db=$E2E_DIR/$name/state.db
    gen_config "$cfg" "$name" "$k" "$db"
    start_bridge "$name" "$cfg" "${name}_dev$((k - 1))"
    if [ -n "${E2E_IO_SQL:-}" ]; then
        # Experiments only (e.g. "DROP INDEX idx_snapshots_device"): never in the default run.
        echo "   io experiment: $E2E_IO_SQL" >&2
        sqlite3 "$db" "$E2E_IO_SQL"
    fi
    sync
    local wb0 wb1 c0 syncs0
    wb0=$(proc_io "$BPID" write_bytes)
    c0=$(proc_io "$BPID" wchar)
    local strace_pid=""
    rm -f "$E2E_DIR/strace.out"
    if command -v strace >/dev/null; then
        strace -f -c -e trace=fsync,fdatasync -o "$E2E_DIR/strace.out" -p "$BPID" 2>/dev/null &
        strace_pid=$!
        sleep 0.3
    fi
    local t0 t1
    t0=$(now_us)
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k "$k" -q 0 -P "$name" -r "$rate" >"$E2E_DIR/${name}_load.out"
    "$E2E_BUILD/bench/commit_wait" "$db" "$n" 30 5 >/dev/null || echo "   $name: not all committed" >&2
    t1=$(now_us)
    if [ -n "$strace_pid" ]; then
        kill -INT "$strace_pid" 2>/dev/null || true
        wait "$strace_pid" 2>/dev/null || true
    fi
    wb1=$(proc_io "$BPID" write_bytes)
    local c1
    c1=$(proc_io "$BPID" wchar)
    stop_bridge "$name"
    local secs
    secs=$(python3 -c "print(($t1-$t0)/1e6)")
    IO_N=$n
    IO_BYTES_PER_T=$(python3 -c "print(round(($wb1-$wb0)/$n,1))")
    IO_WCHAR_PER_T=$(python3 -c "print(round(($c1-$c0)/$n,1))")
    # The stats line counts every commit and sync of the bridge's life, start-up included.
    IO_COMMITS=$ST_commits
    IO_COMMITS_PER_S=$(python3 -c "print(round($ST_commits/$secs,2))")
    IO_SYNCS=${ST_syncs:-0}
    IO_SYNCS_PER_S=$(python3 -c "print(round($IO_SYNCS/$secs,2))")
    IO_FSYNCS=$(awk '$NF=="fsync"||$NF=="fdatasync"{s+=$4} END{print s+0}' "$E2E_DIR/strace.out" 2>/dev/null || echo 0)
    IO_FSYNC_PER_S=$(python3 -c "print(round(${IO_FSYNCS:-0}/$secs,2))")
    IO_SECS=$secs
    echo "   write_bytes/transition $IO_BYTES_PER_T (wchar incl. MQTT $IO_WCHAR_PER_T), commits/s $IO_COMMITS_PER_S, fsync/s $IO_FSYNC_PER_S, policy syncs/s $IO_SYNCS_PER_S" >&2
}

phase_io() {
    io_run 1000 "$E2E_IO_S" io
    R_IO_N=$IO_N R_IO_BYTES_PER_T=$IO_BYTES_PER_T R_IO_WCHAR_PER_T=$IO_WCHAR_PER_T
    R_IO_COMMITS=$IO_COMMITS R_IO_COMMITS_PER_S=$IO_COMMITS_PER_S R_IO_FSYNCS=$IO_FSYNCS
    R_IO_FSYNC_PER_S=$IO_FSYNC_PER_S R_IO_SYNCS_PER_S=$IO_SYNCS_PER_S R_IO_SECS=$IO_SECS
}

# A home's rate: every transition its own commit, the sync policy's bound.
phase_io_slow() {
    io_run 10 "$E2E_IO_SLOW_S" ios
    R_IOS_N=$IO_N R_IOS_BYTES_PER_T=$IO_BYTES_PER_T R_IOS_COMMITS_PER_S=$IO_COMMITS_PER_S
    R_IOS_FSYNC_PER_S=$IO_FSYNC_PER_S R_IOS_SYNCS_PER_S=$IO_SYNCS_PER_S R_IOS_SECS=$IO_SECS
}

phase_big() {
    local k=$E2E_BIG_K
    echo "== big: $k devices (restore, RSS)" >&2
    local cfg=$E2E_DIR/big.yaml db=$E2E_DIR/big/state.db
    gen_config "$cfg" big "$k" "$db"
    python3 - "$E2E_DIR/big_state.json" "$k" <<'PY'
import json, sys
k = int(sys.argv[2])
st = {}
for i in range(k):
    st[f"device:big_dev{i}"] = {"value": 0} if i % 2 == 0 else {"seq": 0, "t": 0}
json.dump(st, open(sys.argv[1], "w"))
PY
    mkdir -p "$(dirname "$db")" && : >"$db" # state import never creates a database
    "$E2E_BIN" -c "$cfg" state import "$E2E_DIR/big_state.json" >/dev/null
    start_bridge big "$cfg" "big_dev$((k - 1))"
    R_BIG_CONNECT_MS=$(( (BCONN_US - BSTART_US) / 1000 ))
    local line
    line=$(grep -o 'restored [0-9]* of [0-9]* devices from .* in [0-9]* ms' "$E2E_DIR/big.log")
    R_BIG_RESTORED=$(echo "$line" | awk '{print $2}')
    R_BIG_RESTORE_MS=$(echo "$line" | awk '{print $(NF-1)}')
    # Two transitions per device (seq 1 and 2 over the imported 0).
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n $((2 * k)) -k "$k" -q 0 -P big >/dev/null
    "$E2E_BUILD/bench/commit_wait" "$db" $((2 * k)) 60 20 >/dev/null || echo "   big: not all committed" >&2
    R_BIG_HWM_KB=$(awk '/VmHWM/{print $2}' "/proc/$BPID/status")
    R_BIG_RSS_KB=$(awk '/VmRSS/{print $2}' "/proc/$BPID/status")
    stop_bridge big
    echo "   restored $R_BIG_RESTORED in $R_BIG_RESTORE_MS ms, connected after $R_BIG_CONNECT_MS ms, VmHWM $R_BIG_HWM_KB kB" >&2
}

# ha_flood LABEL HA: E2E_HA_N messages over E2E_K devices at full speed
# into a fresh bridge with the Home Assistant sink on (HA=1) or off; sets
# HAF_US (bridge CPU per message, load start -> all committed).
ha_flood() {
    local name=$1 n=$E2E_HA_N
    local cfg=$E2E_DIR/$name.yaml db=$E2E_DIR/$name/state.db
    rm -rf "$E2E_DIR/$name"
    GEN_HA=$2 gen_config "$cfg" "$name" "$E2E_K" "$db"
    start_bridge "$name" "$cfg" "${name}_dev$((E2E_K - 1))"
    "$E2E_BUILD/bench/commit_wait" "$db" "$n" 120 5 >"$E2E_DIR/$name.commit" &
    local cpid=$! cpu0 cpu1
    E2E_PIDS+=("$cpid")
    cpu0=$(awk '{print $14+$15}' "/proc/$BPID/stat")
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k "$E2E_K" -q 0 -P "$name" >/dev/null
    wait "$cpid" || echo "   $name: commit_wait timed out" >&2
    cpu1=$(awk '{print $14+$15}' "/proc/$BPID/stat")
    stop_bridge "$name"
    HAF_US=$(python3 -c "print(round(($cpu1-$cpu0)/$(getconf CLK_TCK)/$n*1e6,2))")
    HAF_LOST=$((n - ${ST_applied:-0}))
    echo "   $name (homeassistant $([ "$2" = 1 ] && echo on || echo off)): $HAF_US us/msg, lost $HAF_LOST" >&2
}

# ha_steady LABEL HA: 1 000 msg/s on 100 devices for E2E_HA_S s; sets
# HAS_PCT (bridge CPU, % of one core, over the load) and HAS_US (per message).
ha_steady() {
    local name=$1 k=100 n=$((1000 * E2E_HA_S))
    local cfg=$E2E_DIR/$name.yaml db=$E2E_DIR/$name/state.db
    rm -rf "$E2E_DIR/$name"
    GEN_HA=$2 gen_config "$cfg" "$name" "$k" "$db"
    start_bridge "$name" "$cfg" "${name}_dev$((k - 1))"
    local cpu0 cpu1 t0 t1
    cpu0=$(awk '{print $14+$15}' "/proc/$BPID/stat")
    t0=$(now_us)
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k "$k" -q 0 -P "$name" -r 1000 >/dev/null
    "$E2E_BUILD/bench/commit_wait" "$db" "$n" 30 5 >/dev/null || echo "   $name: not all committed" >&2
    t1=$(now_us)
    cpu1=$(awk '{print $14+$15}' "/proc/$BPID/stat")
    stop_bridge "$name"
    local cpu_s
    cpu_s=$(python3 -c "print(($cpu1-$cpu0)/$(getconf CLK_TCK))")
    HAS_PCT=$(python3 -c "print(round($cpu_s/(($t1-$t0)/1e6)*100,2))")
    HAS_US=$(python3 -c "print(round($cpu_s/$n*1e6,1))")
    echo "   $name (homeassistant $([ "$2" = 1 ] && echo on || echo off)): $HAS_PCT % of a core, $HAS_US us/msg" >&2
}

# What the Home Assistant sink costs on the hot path: the same loads with it
# off and on, interleaved (off, on, off, on) so neighbours hit both alike;
# the means of each are compared.
phase_ha() {
    E2E_HA_N=${E2E_HA_N:-100000}
    E2E_HA_S=${E2E_HA_S:-15}
    echo "== homeassistant: $E2E_HA_N msgs over $E2E_K devices, sink off / on, twice" >&2
    local off=() on=() i
    for i in 1 2; do
        ha_flood "haoff$i" 0
        off+=("$HAF_US")
        ha_flood "haon$i" 1
        on+=("$HAF_US")
    done
    R_HA_FLOOD_OFF=$(python3 -c "print(round(($(IFS=+; echo "${off[*]}"))/${#off[@]},2))")
    R_HA_FLOOD_ON=$(python3 -c "print(round(($(IFS=+; echo "${on[*]}"))/${#on[@]},2))")
    R_HA_FLOOD_ALL="off ${off[*]} / on ${on[*]}"
    echo "== homeassistant: 1 000 msg/s on 100 devices for $E2E_HA_S s, sink off / on" >&2
    ha_steady hasoff 0
    R_HA_STEADY_OFF_PCT=$HAS_PCT R_HA_STEADY_OFF_US=$HAS_US
    ha_steady hason 1
    R_HA_STEADY_ON_PCT=$HAS_PCT R_HA_STEADY_ON_US=$HAS_US
    R_HA_FLOOD_DELTA=$(python3 -c "print(round($R_HA_FLOOD_ON-$R_HA_FLOOD_OFF,2))")
    R_HA_STEADY_DELTA=$(python3 -c "print(round($R_HA_STEADY_ON_US-$R_HA_STEADY_OFF_US,1))")
    echo "   flood: off $R_HA_FLOOD_OFF, on $R_HA_FLOOD_ON us/msg (+$R_HA_FLOOD_DELTA); steady: off $R_HA_STEADY_OFF_US, on $R_HA_STEADY_ON_US us/msg" >&2
}

print_results() {
    local ratio=$R_RATIO
    yn() { python3 -c "print('yes' if $1 else 'NO')"; }
    local cpu_model
    cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    {
        echo
        echo "wb-mqtt-bridge e2e benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)  nproc=$(nproc)  cpu=$cpu_model"
        echo "load average at start: $E2E_LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the CPUs)"
        printf '%-44s %-22s %-14s %s\n' "figure" "measured" "target" "met"
        printf '%-44s %-22s %-14s %s\n' "ceiling (bare subscriber, QoS 0)" "$R_CEIL_RATE msg/s" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "bridge ingest to committed (QoS 0)" "$R_INGEST_RATE msg/s" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "bridge / ceiling (median of $E2E_PAIRS pairs)" "$ratio %" ">= 90 %" "$(yn "$ratio >= 90")"
        printf '%-44s %-22s %-14s %s\n' "  every pair's ratio" "$R_RATIOS %" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "bridge CPU per message (median pair)" "$R_INGEST_CPU_US us" "<= 10 us" "$(yn "$R_INGEST_CPU_US <= 10")"
        printf '%-44s %-22s %-14s %s\n' "  CPU seconds per 100 000 msgs, flood" "$(python3 -c "print(round($R_INGEST_CPU_US*0.1,2))") s" "<= 1 s" "$(yn "$R_INGEST_CPU_US <= 10")"
        printf '%-44s %-22s %-14s %s\n' "  every pair's CPU per message" "$R_CPU_US_ALL us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "messages lost (N - applied), all pairs" "$R_INGEST_LOST" "0" "$(yn "$R_INGEST_LOST == 0 and $R_INGEST_BADVAL == 0")"
        printf '%-44s %-22s %-14s %s\n' "devices with a wrong final value" "$R_INGEST_BADVAL" "0" "$(yn "$R_INGEST_BADVAL == 0")"
        printf '%-44s %-22s %-14s %s\n' "latency p50 @${E2E_LAT_RATE}/s" "${R_LAT_P50:-?} us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "latency p99 @${E2E_LAT_RATE}/s" "${R_LAT_P99:-?} us" "<= 5000 us" "$(yn "${R_LAT_P99:-999999999} <= 5000")"
        printf '%-44s %-22s %-14s %s\n' "latency max @${E2E_LAT_RATE}/s" "${R_LAT_MAX:-?} us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "latency max, 1 s warm-up @${E2E_LAT_RATE}/s" "${R_LAT_WARM_MAX:-?} us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "commits/s @1000/s (100 ms window)" "$R_IO_COMMITS_PER_S" "<= 10" "$(yn "$R_IO_COMMITS_PER_S <= 10.5")"
        printf '%-44s %-22s %-14s %s\n' "fsync+fdatasync calls/s @1000/s" "$R_IO_FSYNC_PER_S" "<= 10" "$(yn "$R_IO_FSYNC_PER_S <= 10.5")"
        printf '%-44s %-22s %-14s %s\n' "  of them sync-policy WAL syncs/s @1000/s" "$R_IO_SYNCS_PER_S" "<= 1 (1 s)" "$(yn "$R_IO_SYNCS_PER_S <= 1.05")"
        printf '%-44s %-22s %-14s %s\n' "disk bytes written / transition @1000/s" "$R_IO_BYTES_PER_T" "<= 250" "$(yn "$R_IO_BYTES_PER_T <= 250")"
        printf '%-44s %-22s %-14s %s\n' "commits/s @10/s on 100 devices" "$R_IOS_COMMITS_PER_S" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "fsync+fdatasync calls/s @10/s" "$R_IOS_FSYNC_PER_S" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "  of them sync-policy WAL syncs/s @10/s" "$R_IOS_SYNCS_PER_S" "<= 1 (1 s)" "$(yn "$R_IOS_SYNCS_PER_S <= 1.05")"
        printf '%-44s %-22s %-14s %s\n' "disk bytes written / transition @10/s" "$R_IOS_BYTES_PER_T" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "restore of $E2E_BIG_K devices" "$R_BIG_RESTORE_MS ms" "<= 100 ms" "$(yn "$R_BIG_RESTORE_MS <= 100")"
        printf '%-44s %-22s %-14s %s\n' "start -> MQTT connected, $E2E_BIG_K devices" "$R_BIG_CONNECT_MS ms" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "peak RSS (VmHWM), $E2E_BIG_K devices" "$R_BIG_HWM_KB kB" "<= 16384 kB" "$(yn "$R_BIG_HWM_KB <= 16384")"
        printf '%-44s %-22s %-14s %s\n' "homeassistant off: CPU/msg, flood" "$R_HA_FLOOD_OFF us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "homeassistant on: CPU/msg, flood" "$R_HA_FLOOD_ON us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "  the sink's cost per message, flood" "$R_HA_FLOOD_DELTA us" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "homeassistant off: 1000/s on 100 devices" "$R_HA_STEADY_OFF_PCT % ($R_HA_STEADY_OFF_US us)" "<= 2 %" "$(yn "$R_HA_STEADY_OFF_PCT <= 2")"
        printf '%-44s %-22s %-14s %s\n' "  CPU seconds per 100 000 msgs, steady" "$(python3 -c "print(round($R_HA_STEADY_OFF_US*0.1,2))") s" "<= 2 s" "$(yn "$R_HA_STEADY_OFF_US <= 20")"
        printf '%-44s %-22s %-14s %s\n' "homeassistant on: 1000/s on 100 devices" "$R_HA_STEADY_ON_PCT % ($R_HA_STEADY_ON_US us)" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "  floor: bare paho subscriber, same load" "${R_FLOOR_PCT:-?} % (${R_FLOOR_US:-?} us)" "-" "-"
        print_profile
        echo "ingest: $R_INGEST_STATS"
    } | tee "$E2E_DIR/table.txt"
    python3 - <<PY
import json, subprocess, datetime
null, true, false = None, True, False  # the profile's JSON is pasted in as it is
r = {
  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  "nproc": $(nproc), "cpu_model": """$cpu_model""",
  "loadavg_at_start": "$E2E_LOAD0", "loadavg_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "git_commit": subprocess.run(["git","rev-parse","--short","HEAD"],capture_output=True,text=True).stdout.strip(),
  "load": {"messages": $E2E_N, "devices": $E2E_K, "qos": 0, "payloads": "even devices plain int, odd devices JSON {seq,t}"},
  "ceiling_msg_s": $R_CEIL_RATE, "ceiling_received": $R_CEIL_COUNT,
  "bridge_msg_s": $R_INGEST_RATE, "bridge_seconds": $R_INGEST_SECS, "bridge_cpu_percent": $R_INGEST_CPU,
  "bridge_cpu_us_per_msg": $R_INGEST_CPU_US, "pair_cpu_us_per_msg": [$R_CPU_US_ALL],
  "publisher_msg_s": ${R_PUB_RATE:-0},
  "bridge_over_ceiling_percent": $ratio, "pairs": $E2E_PAIRS, "pair_ratios_percent": [$R_RATIOS],
  "committed_rows": $R_INGEST_ROWS, "applied": ${R_INGEST_APPLIED:-0}, "lost": $R_INGEST_LOST,
  "dropped": ${R_INGEST_DROPPED:-0}, "rejected": ${R_INGEST_REJECTED:-0}, "wrong_final_values": $R_INGEST_BADVAL,
  "ingest_commits": ${R_INGEST_COMMITS:-0}, "ingest_stats_line": """$R_INGEST_STATS""",
  "latency": {"rate_msg_s": $E2E_LAT_RATE, "messages": $R_LAT_N, "p50_us": ${R_LAT_P50:-None}, "p99_us": ${R_LAT_P99:-None}, "max_us": ${R_LAT_MAX:-None}, "missing": ${R_LAT_MISSING:-None}, "superseded": ${R_LAT_SUPERSEDED:-None}, "lost": ${R_LAT_LOST:-None}, "coalesced": ${R_LAT_COALESCED:-None}, "warmup_messages": $E2E_LAT_RATE, "warmup_max_us": ${R_LAT_WARM_MAX:-None}},
  "io": {"rate_msg_s": 1000, "devices": 100, "transitions": $R_IO_N, "seconds": $R_IO_SECS,
         "disk_write_bytes_per_transition": $R_IO_BYTES_PER_T, "wchar_bytes_per_transition_incl_mqtt": $R_IO_WCHAR_PER_T,
         "commits": $R_IO_COMMITS, "commits_per_s": $R_IO_COMMITS_PER_S, "fsync_calls": ${R_IO_FSYNCS:-0}, "fsync_per_s": $R_IO_FSYNC_PER_S,
         "sync_policy_syncs_per_s": $R_IO_SYNCS_PER_S},
  "io_slow": {"rate_msg_s": 10, "devices": 100, "transitions": $R_IOS_N, "seconds": $R_IOS_SECS,
         "disk_write_bytes_per_transition": $R_IOS_BYTES_PER_T, "commits_per_s": $R_IOS_COMMITS_PER_S,
         "fsync_per_s": $R_IOS_FSYNC_PER_S, "sync_policy_syncs_per_s": $R_IOS_SYNCS_PER_S},
  "big": {"devices": $E2E_BIG_K, "restored": ${R_BIG_RESTORED:-0}, "restore_ms": ${R_BIG_RESTORE_MS:-None},
          "start_to_mqtt_connected_ms": $R_BIG_CONNECT_MS, "vmhwm_kb": ${R_BIG_HWM_KB:-0}, "vmrss_kb": ${R_BIG_RSS_KB:-0}},
  "homeassistant": {"flood_messages": $E2E_HA_N, "devices": $E2E_K,
          "flood_cpu_us_per_msg_off": $R_HA_FLOOD_OFF, "flood_cpu_us_per_msg_on": $R_HA_FLOOD_ON,
          "flood_runs": "$R_HA_FLOOD_ALL",
          "steady_rate_msg_s": 1000, "steady_devices": 100, "steady_seconds": $E2E_HA_S,
          "steady_cpu_percent_off": $R_HA_STEADY_OFF_PCT, "steady_cpu_percent_on": $R_HA_STEADY_ON_PCT,
          "steady_cpu_us_per_msg_off": $R_HA_STEADY_OFF_US, "steady_cpu_us_per_msg_on": $R_HA_STEADY_ON_US},
  "floor_bare_subscriber_1000_msg_s": {"cpu_percent": ${R_FLOOR_PCT:-None}, "cpu_us_per_msg": ${R_FLOOR_US:-None}},
  "cpu_s_per_100k_msgs": {"flood": round($R_INGEST_CPU_US*0.1,3), "steady_1000_msg_s": round($R_HA_STEADY_OFF_US*0.1,3)},
  "profile": {"flood": ${R_PROF_FLOOD_JSON:-None}, "steady": ${R_PROF_STEADY_JSON:-None}, "steady_rate_msg_s": ${R_PROF_RATE:-None},
              "baseline_instructions_per_msg": {"flood": ${PROF_BASE_FLOOD:-None}, "steady": ${PROF_BASE_STEADY:-None}}},
  "targets": {"ratio_percent_min": 90, "cpu_us_per_msg_flood_max": 10, "steady_cpu_percent_max": 2, "instructions_reduction_percent_min": 40, "lost": 0, "p99_us_max": 5000, "commits_per_s_max": 10,
              "bytes_per_transition_max": 250, "sync_policy_syncs_per_s_max": 1, "restore_ms_max": 100, "vmhwm_kb_max": 16384},
}
json.dump(r, open("bench/results.json", "w"), indent=2)
print("wrote bench/results.json")
PY
}

# The --backend postgresql run: its own server, the pairs, a short table.
e2e_postgresql() {
    E2E_PGSH=$PWD/tests/tools/pg.sh
    E2E_PG=$(mktemp -d "${TMPDIR:-/tmp}/wbmb-bench-pg.XXXXXX")/srv
    "$E2E_PGSH" start "$E2E_PG"
    trap '"$E2E_PGSH" stop "$E2E_PG"; rm -rf "$(dirname "$E2E_PG")"; e2e_cleanup' EXIT
    E2E_PG_CONNINFO=$(cat "$E2E_PG/conninfo")
    E2E_PG_PWFILE=$E2E_PG/password
    E2E_PG_PASSWORD=$(cat "$E2E_PG_PWFILE")
    export E2E_PG_CONNINFO E2E_PG_PWFILE
    phase_pairs
    local ver
    ver=$("$E2E_PGSH" psql "$E2E_PG" "SHOW server_version")
    echo
    echo "e2e on postgresql $ver (same host, loopback; $E2E_N msgs, $E2E_K devices, QoS 0, history on, commit 100 ms; load $E2E_LOAD0)"
    printf '%-34s %s\n' "ceiling (bare subscriber)" "$R_CEIL_RATE msg/s"
    printf '%-34s %s\n' "ingest into postgresql" "$R_INGEST_RATE msg/s in $R_INGEST_SECS s"
    printf '%-34s %s\n' "ratio bridge / ceiling (median)" "$R_RATIO % (pairs: $R_RATIOS)"
    printf '%-34s %s\n' "commits per second" "$R_INGEST_COMMITS_S ($R_INGEST_COMMITS commits)"
    printf '%-34s %s\n' "bridge CPU per message" "$R_INGEST_CPU_US us (pairs: $R_CPU_US_ALL)"
    printf '%-34s %s\n' "lost / wrong final values" "$R_INGEST_LOST / $R_INGEST_BADVAL"
}

cmd_e2e() {
    local backend=sqlite
    while [ $# -gt 0 ]; do
        case $1 in
        --backend) backend=${2:?--backend needs sqlite or postgresql}; shift 2 ;;
        *) echo "bench e2e: unknown option $1" >&2; exit 2 ;;
        esac
    done
    case $backend in sqlite | postgresql) ;; *) echo "bench e2e: --backend sqlite|postgresql" >&2; exit 2 ;; esac
    E2E_N=${E2E_N:-200000}
    E2E_K=${E2E_K:-1000}
    E2E_LAT_RATE=${E2E_LAT_RATE:-5000}
    E2E_LAT_S=${E2E_LAT_S:-10}
    E2E_IO_S=${E2E_IO_S:-20}
    E2E_IO_SLOW_S=${E2E_IO_SLOW_S:-60}
    E2E_BIG_K=${E2E_BIG_K:-10000}
    E2E_PAIRS=${E2E_PAIRS:-3}
    E2E_LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
    ./scripts/deps.sh
    build wb-mqtt-bridge mqtt_load mqtt_sink commit_wait >/dev/null
    E2E_BUILD=$BUILD
    E2E_BIN=$BUILD/wb-mqtt-bridge
    # On the disk the bridge would use (not tmpfs), so write_bytes is real.
    E2E_DIR=$(mktemp -d "$PWD/$BUILD/e2e.XXXXXX")
    trap e2e_cleanup EXIT
    e2e_broker
    if [ "$backend" = postgresql ]; then
        e2e_postgresql
        return
    fi
    if [ -n "${E2E_ONLY:-}" ]; then
        # Experiments: E2E_ONLY="io big" runs just those phases, no table.
        local ph
        for ph in $E2E_ONLY; do "phase_$ph"; done
        case " $E2E_ONLY " in *" profile "*) print_profile ;; esac
        return
    fi
    phase_pairs
    phase_latency
    phase_io
    phase_io_slow
    phase_big
    phase_ha
    phase_floor
    phase_profile
    print_results
}
