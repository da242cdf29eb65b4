#!/usr/bin/env bash
# The PostgreSQL backend on the real binary against a real server that
# tests/tools/pg.sh starts here (initdb, pg_ctl as an unprivileged user, a
# free loopback port; the bridge's role logs in with a password file over
# scram):
#   - two bridges with different sites write to one database, each its own
#     rows only, and a SQLite bridge fed the same input answers the HTTP
#     history, command-log and connection-log queries the same way;
#   - the server killed (pg_ctl -m immediate) under load: /health says
#     db: error, the bridge keeps everything, and after the restart every
#     value published is in the database;
#   - a multi-host conninfo whose first host is down uses the second;
#   - failover: a streaming-replication standby, the primary killed, the
#     standby promoted: the bridge (both hosts, target_session_attrs=
#     read-write) writes to it, and loses nothing that had been replicated;
#   - unreachable at start: retried for connect_timeout_s, then exit 1;
#     an invalid conninfo and a missing site: clear errors, no password shown.
source "$(dirname "$0")/lib.sh"

PGSH="$WBMB_SOURCE_DIR/tests/tools/pg.sh"
PG="$T_DIR/pg"
PG2="$T_DIR/pg2"
trap '"$PGSH" stop "$PG" || true; "$PGSH" stop "$PG2" || true; t_cleanup' EXIT
"$PGSH" start "$PG" || { fail "postgresql server starts"; t_done; }
ok "postgresql server starts"
PG_PORT=$(cat "$PG/port")
CONNINFO=$(cat "$PG/conninfo")
psq() { "$PGSH" psql "$PG" "$1"; }

start_broker

# pg_config FILE NAME HTTP_PORT BACKEND_YAML [EXTRA_DEVICES]: the flat of
# this test, on the persistence given.
pg_config() {
    local file=$1 name=$2 port=$3 backend=$4 extra=${5:-}
    cat >"$file" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-pg-$name-$$
  keepalive_s: 5
persistence:
  db_path: $T_DIR/$name/state.db
  commit_interval_ms: 50
$backend
  history:
    enabled: true
    max_rows_per_device: 100000
    max_age_days: 30
http:
  listen: 127.0.0.1:$port
bridge:
  device_id: bridge_$name
devices:
  - id: tv
    name: Test TV
    type: tv
    state:
      - topic: /devices/relay/controls/K1
        field: power
        type: bool
    actions:
      set_volume:
        topic: /devices/tv/controls/volume/on
        payload: "{level}"
        params:
          level: {type: int, min: 0, max: 100, required: true}
        set: {volume: "{level}"}
  - id: counter
    name: Counter
    type: meter
    state:
      - topic: test/counter/+
        field: value
        type: int
  - id: plug
    name: Plug
    type: plug
    state:
      - topic: z2m/plug
        type: json
        fields: {power_w: power, state: state}
    availability:
      topic: z2m/plug/availability
      online: online
      offline: offline
$extra
YAML
}
pg_backend() { # SITE [CONNINFO] [EXTRA KEYS]
    printf '  backend: postgresql\n  postgresql:\n    conninfo: "%s"\n    password_file: %s\n    site: %s\n%s' \
        "${2:-$CONNINFO}" "$PG/password" "$1" "${3:-}"
}

PA=$(free_port) PB=$(free_port) PS=$(free_port)
pg_config "$T_DIR/a.yaml" a "$PA" "$(pg_backend flat_a)"
pg_config "$T_DIR/b.yaml" b "$PB" "$(pg_backend flat_b)" "  - id: only_b
    name: Only B
    type: sensor
    state:
      - topic: test/only_b
        field: v
        type: int"
pg_config "$T_DIR/s.yaml" s "$PS" "  backend: sqlite"
check "config with backend postgresql is valid" "$WBMB_BIN" -c "$T_DIR/a.yaml" --check-config

start_bridge "$T_DIR/a.yaml"
PID_A=$BRIDGE_PID
start_bridge "$T_DIR/b.yaml"
PID_B=$BRIDGE_PID
start_bridge "$T_DIR/s.yaml"
PID_S=$BRIDGE_PID
health_db() { curl -sf -m 5 "http://127.0.0.1:$1/health" | jq -e ".db == \"$2\" and .mqtt == \"connected\""; }
for p in "$PA" "$PB" "$PS"; do
    check "bridge on :$p healthy" wait_for 30 health_db "$p" ok
done
check "schema version 2 in the database" [ "$(psq 'SELECT version FROM schema_version')" = 2 ]

# ---- the same input to all three -------------------------------------------
pub -r -t z2m/plug/availability -m online
for v in 1 0 1 0 1; do pub -t /devices/relay/controls/K1 -m "$v"; done
pub -t z2m/plug -m '{"power":5,"state":"ON"}'
pub -t z2m/plug/availability -m offline
pub -t z2m/plug/availability -m online
pub -t test/only_b -m 7
for p in "$PA" "$PS"; do
    curl -sf -m 5 -X POST -d '{"action":"set_volume","params":{"level":30}}' \
        "http://127.0.0.1:$p/devices/tv/action" >/dev/null || fail "action on :$p"
    curl -s -m 5 -X POST -d '{"action":"set_volume","params":{"level":300}}' \
        "http://127.0.0.1:$p/devices/tv/action" >/dev/null
done
hist_len() { [ "$(curl -sf -m 5 "http://127.0.0.1:$1/state-history/$2?limit=100" | jq length)" = "$3" ]; }
# Five power changes and the volume (not sent to b): six rows of tv.
for p in "$PA" "$PS"; do
    check "tv history complete on :$p" wait_for 20 hist_len "$p" tv 6
done
check "tv history complete on :$PB" wait_for 20 hist_len "$PB" tv 5
check "plug connection log complete on :$PA" wait_for 20 bash -c \
    "[ \$(curl -sf 'http://127.0.0.1:$PA/device-connection-history/plug?limit=100' | jq length) -ge 3 ]"
check "plug connection log complete on :$PS" wait_for 20 bash -c \
    "[ \$(curl -sf 'http://127.0.0.1:$PS/device-connection-history/plug?limit=100' | jq length) -ge 3 ]"

# Same answers, the times (each bridge stamps its own) and ids aside; the
# time formats the same.
TS_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'
same() { # NAME PATH JQ_FILTER
    local a s
    a=$(curl -sf -m 5 "http://127.0.0.1:$PA$2" | jq -cS "$3")
    s=$(curl -sf -m 5 "http://127.0.0.1:$PS$2" | jq -cS "$3")
    if [ -n "$a" ] && [ "$a" = "$s" ]; then ok "$1 same as with sqlite"; else
        fail "$1 same as with sqlite"
        echo "# postgresql: $a"
        echo "# sqlite:     $s"
    fi
}
same "state history" "/state-history/tv?limit=100" 'map(.state)'
same "state history, limit" "/state-history/tv?limit=2" 'map(.state)'
same "state history keys" "/state-history/tv?limit=100" 'map(keys)'
same "history time format" "/state-history/tv?limit=100" "map(.ts | test(\"$TS_RE\"))"
same "connection log" "/device-connection-history/plug?limit=100" 'map(.event)'
same "connection log keys" "/device-connection-history/plug?limit=100" 'map(keys)'
same "command log" "/command-logs?device_id=tv&limit=100" \
    "map(del(.command_id, .created_at, .completed_at) + {t: (.created_at | test(\"$TS_RE\"))})"
same "command log, status filter" "/command-logs?status=rejected" 'map(.action)'
same "command log, status sent" "/command-logs?status=sent" 'map(.params)'
same "device state" "/devices/tv/state" '.'

# ---- sites ------------------------------------------------------------------
check "site b has its own device" [ "$(psq "SELECT count(*) FROM state_store WHERE site = 'flat_b' AND key = 'device:only_b'")" = 1 ]
check "site a has not" [ "$(psq "SELECT count(*) FROM state_store WHERE site = 'flat_a' AND key = 'device:only_b'")" = 0 ]
check "each site its own history rows" [ "$(psq "SELECT string_agg(site || '=' || n, ',' ORDER BY site) FROM (SELECT site, count(*) n FROM device_state_snapshots WHERE device_id = 'tv' GROUP BY site) t")" = "flat_a=6,flat_b=5" ]
check "command logs of site a only on a" [ "$(psq "SELECT count(*) FROM command_logs WHERE site = 'flat_b'")" = 0 ]
kill -TERM "$PID_B" "$PID_S" 2>/dev/null || true
wait "$PID_B" "$PID_S" 2>/dev/null || true

# ---- the server killed under load ---------------------------------------------
N=3000
( for b in $(seq 0 29); do
    seq $((b * 100 + 1)) $((b * 100 + 100)) | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -l -t test/counter/x
    sleep 0.05 # pacing of the load, not a wait for a condition
done ) &
LOAD=$!
T_PIDS+=("$LOAD")
rows() { [ "$(psq "SELECT count(*) FROM device_state_snapshots WHERE site = 'flat_a' AND device_id = 'counter'")" -ge "$1" ]; }
check "load reaches the database" wait_for 30 rows 300
"$PGSH" kill "$PG"
t_log "server killed (immediate)"
check "/health says db: error" wait_for 30 bash -c "curl -s -m 5 http://127.0.0.1:$PA/health | jq -e '.db == \"error\"'"
wait "$LOAD" || fail "load generator"
check "the bridge keeps the last value while the server is down" wait_for 20 bash -c \
    "[ \"\$(curl -sf http://127.0.0.1:$PA/devices/counter/state | jq -c .value)\" = $N ]"
"$PGSH" restart "$PG"
t_log "server restarted"
check "/health says db: ok again" wait_for 60 health_db "$PA" ok
pending0() { curl -sf -m 5 "http://127.0.0.1:$PA/metrics" | grep -qx 'wbmb_store_pending 0'; }
check "nothing left pending" wait_for 60 pending0
check "every value published is in the history" [ "$(psq "SELECT count(DISTINCT state) FROM device_state_snapshots WHERE site = 'flat_a' AND device_id = 'counter'")" = "$N" ]
check "the state row holds the last value" [ "$(psq "SELECT value::json->>'value' FROM state_store WHERE site = 'flat_a' AND key = 'device:counter'")" = "$N" ]
check "log says the commits failed and succeed again" bash -c \
    "grep -q 'commit to postgresql.*failed, changes kept' $T_DIR/bridge.log && grep -q 'commits to postgresql.*succeed again' $T_DIR/bridge.log"
check "no password in the log" bash -c "! grep -qF \"\$(cat $PG/password)\" $T_DIR/bridge.log"
BRIDGE_PID=$PID_A
stop_bridge
check "bridge a exits 0" [ "$BRIDGE_RC" = 0 ]
start_bridge "$T_DIR/a.yaml"
check "restart restores the state from postgresql" wait_for 30 bash -c \
    "[ \"\$(curl -sf http://127.0.0.1:$PA/devices/counter/state | jq -c .value)\" = $N ]"
check "the state tool reads the site" bash -c \
    "[ \"\$('$WBMB_BIN' -c '$T_DIR/a.yaml' state get device:counter | jq -c .value)\" = $N ]"
stop_bridge

# ---- multi-host: the first host down -------------------------------------------
DEAD=$(free_port)
PC=$(free_port)
pg_config "$T_DIR/c.yaml" c "$PC" "$(pg_backend flat_c "host=127.0.0.1,127.0.0.1 port=$DEAD,$PG_PORT dbname=wbmb user=wbmb target_session_attrs=read-write")"
start_bridge "$T_DIR/c.yaml"
check "multi-host: healthy with the first host down" wait_for 30 health_db "$PC" ok
pub -t /devices/relay/controls/K1 -m 1
check "multi-host: rows written to the second host" wait_for 20 bash -c \
    "[ \"\$(\"$PGSH\" psql \"$PG\" \"SELECT count(*) FROM state_store WHERE site = 'flat_c' AND key = 'device:tv'\")\" = 1 ]"
stop_bridge

# ---- unreachable at start, bad conninfo, no site ---------------------------------
: >"$T_DIR/bridge.log"
pg_config "$T_DIR/d.yaml" d "$(free_port)" "$(pg_backend flat_d "host=127.0.0.1 port=$DEAD dbname=wbmb user=wbmb password=inline-secret" "    connect_timeout_s: 2")"
start_bridge "$T_DIR/d.yaml"
check "unreachable at start: exits after connect_timeout_s" wait_for 30 bash -c "! kill -0 $BRIDGE_PID"
stop_bridge
check "unreachable at start: exit code 1" [ "$BRIDGE_RC" = 1 ]
check "unreachable at start: retried, then a clear error" bash -c \
    "grep -q 'try 2' $T_DIR/bridge.log && grep -q 'cannot open the state store postgresql: cannot connect to postgresql (.*port=$DEAD' $T_DIR/bridge.log"
check "unreachable at start: no password in the log" bash -c "! grep -q inline-secret $T_DIR/bridge.log"
pg_config "$T_DIR/e.yaml" e "$(free_port)" "$(pg_backend flat_e "host=127.0.0.1 = nonsense")"
start_bridge "$T_DIR/e.yaml"
check "bad conninfo: exits" wait_for 30 bash -c "! kill -0 $BRIDGE_PID"
stop_bridge
check "bad conninfo: exit code 1 and a clear error" bash -c \
    "[ $BRIDGE_RC = 1 ] && grep -q 'conninfo is not a valid libpq conninfo' $T_DIR/bridge.log"
sed -i '/^    site: /d' "$T_DIR/e.yaml"
check "no site: --check-config fails" bash -c "! '$WBMB_BIN' -c '$T_DIR/e.yaml' --check-config 2>$T_DIR/check.err"
check "no site: says what is missing" grep -q 'persistence.postgresql.site is required' "$T_DIR/check.err"

# ---- failover to a promoted standby (last: the first server stays dead) ----------
"$PGSH" standby "$PG2" "$PG" || fail "standby starts"
P2=$(cat "$PG2/port")
psq2() { "$PGSH" psql "$PG2" "$1"; }
PF=$(free_port)
pg_config "$T_DIR/f.yaml" f "$PF" "$(pg_backend flat_f "host=127.0.0.1,127.0.0.1 port=$PG_PORT,$P2 dbname=wbmb user=wbmb target_session_attrs=read-write")"
start_bridge "$T_DIR/f.yaml"
check "failover: healthy on the primary" wait_for 30 health_db "$PF" ok
seq 1 200 | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -l -t test/counter/f
frows() { [ "$("$PGSH" psql "$1" "SELECT count(DISTINCT state) FROM device_state_snapshots WHERE site = 'flat_f' AND device_id = 'counter'")" = "$2" ]; }
check "failover: the primary has the first 200" wait_for 30 frows "$PG" 200
check "failover: the standby replayed them" wait_for 30 frows "$PG2" 200
check "failover: the standby refuses writes" bash -c "[ \"\$(\"$PGSH\" psql \"$PG2\" 'SELECT pg_is_in_recovery()')\" = t ]"
"$PGSH" kill "$PG"
t_log "primary killed"
seq 201 400 | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -l -t test/counter/f
check "failover: /health says db: error without a primary" wait_for 30 bash -c "curl -s -m 5 http://127.0.0.1:$PF/health | jq -e '.db == \"error\"'"
"$PGSH" promote "$PG2"
t_log "standby promoted"
check "failover: db: ok on the promoted standby" wait_for 60 health_db "$PF" ok
fpending0() { curl -sf -m 5 "http://127.0.0.1:$PF/metrics" | grep -qx 'wbmb_store_pending 0'; }
check "failover: nothing left pending" wait_for 60 fpending0
check "failover: all 400 values on the new primary" frows "$PG2" 400
check "failover: the last one in state_store" [ "$(psq2 "SELECT value::json->>'value' FROM state_store WHERE site = 'flat_f' AND key = 'device:counter'")" = 400 ]
check "failover: no dropped history" bash -c "curl -sf http://127.0.0.1:$PF/metrics | grep -qx 'wbmb_store_history_dropped_total 0'"
stop_bridge

t_done
