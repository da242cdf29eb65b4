#!/usr/bin/env bash
# The history policy (issue 21 point 1) on the real binary: mode all (every
# transition a row, plain {"ts","state"} answers), interval (one row per
# interval with "kind":"interval" and min/max/mean/n in "stats"), off (no
# rows, the state still kept), fields/exclude (a transition of an
# unrecorded field writes no row), SIGTERM writing the open interval, and a
# config naming a field the device does not have refused with FILE:LINE:COL.
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
DB="$T_DIR/db/state.db"
cat >"$T_DIR/config.yaml" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-hist-$$
persistence:
  db_path: $DB
  commit_interval_ms: 50
  history:
    mode: all
    exclude: [rssi]
http:
  listen: 127.0.0.1:$HTTP_PORT
bridge:
  device_id: test_bridge
devices:
  - id: m_all
    wb_mirror: false
    state:
      - {topic: test/all, type: json, fields: {power: power, rssi: rssi}}
  - id: m_int
    wb_mirror: false
    state:
      - {topic: test/int, type: float, field: power}
      - {topic: test/int_note, type: string, field: note}
    history: {mode: interval, interval_ms: 1000, fields: [power]}
  - id: m_slow
    wb_mirror: false
    state:
      - {topic: test/slow, type: float, field: power}
    history: {mode: interval, interval_ms: 3600000}
  - id: m_off
    wb_mirror: false
    state:
      - {topic: test/off, type: int, field: n}
    history: {mode: off}
YAML
start_bridge "$T_DIR/config.yaml"
check "bridge answers HTTP" wait_for 30 curl -sf "$BASE/health"
check "bridge connects to the broker" wait_for 30 log_has "MQTT connected"

hist() { curl -sf "$BASE/state-history/$1?limit=100"; }
count_is() { [ "$(hist "$1" | jq length)" = "$2" ]; }

# all (with the default's exclude: [rssi])
pub -t test/all -m '{"power": 1, "rssi": -50}'
pub -t test/all -m '{"power": 2, "rssi": -50}'
pub -t test/all -m '{"rssi": -70}' # only an excluded field: no row
pub -t test/all -m '{"power": 3}'
check "all: the state has every field (rssi too)" wait_for 20 bash -c "$WBMB_BIN -c '$T_DIR/config.yaml' state get device:m_all 2>/dev/null | jq -e '.power == 3 and .rssi == -70' >/dev/null"
check "all: one row per recorded transition (3)" wait_for 20 count_is m_all 3
check "all: rows are plain {ts,state} without the excluded field" \
    bash -c "curl -sf '$BASE/state-history/m_all?limit=100' | jq -e 'all(.[]; (keys == [\"state\",\"ts\"]) and (.state | has(\"rssi\") | not)) and .[0].state.power == 3' >/dev/null"

# off
pub -t test/off -m 1
pub -t test/off -m 2
check "off: the state is kept" wait_for 20 bash -c "$WBMB_BIN -c '$T_DIR/config.yaml' state get device:m_off 2>/dev/null | jq -e '.n == 2' >/dev/null"
check "off: no history row" count_is m_off 0

# interval (1 s): samples 10, 20, 30; a note change is not recorded
for v in 10 20 30; do pub -t test/int -m $v; done
pub -t test/int_note -m hello
check "interval: the rows appear once the interval closes" \
    wait_for 20 bash -c "curl -sf '$BASE/state-history/m_int?limit=100' | jq -e '[.[].stats.power.n] | add == 3' >/dev/null"
H=$(hist m_int)
t_log "interval rows: $H"
check "interval: every row says kind interval and holds only power" \
    bash -c "jq -e 'length >= 1 and length <= 2 and all(.[]; .kind == \"interval\" and (.state | keys) == [\"power\"])' <<<'$H' >/dev/null"
check "interval: min 10, max 30 over the rows, the newest state 30" \
    bash -c "jq -e '([.[].stats.power.min] | min) == 10 and ([.[].stats.power.max] | max) == 30 and .[0].state.power == 30' <<<'$H' >/dev/null"
check "interval: in SQLite too (kind, stats columns)" \
    bash -c "[ \"\$(sqlite3 -readonly '$DB' \"select count(*) from device_state_snapshots where device_id='m_int' and kind='interval' and json_extract(stats,'\$.power.n') >= 1\")\" -ge 1 ]"

# SIGTERM writes the open interval (1 h, so only the stop can close it)
pub -t test/slow -m 5
pub -t test/slow -m 7
check "slow interval: the state arrives" wait_for 20 bash -c "$WBMB_BIN -c '$T_DIR/config.yaml' state get device:m_slow 2>/dev/null | jq -e '.power == 7' >/dev/null"
check "slow interval: no row while it is open" count_is m_slow 0
stop_bridge TERM
check "SIGTERM exits 0 (got $BRIDGE_RC)" test "$BRIDGE_RC" = 0
check "SIGTERM wrote the open interval: mean 6 of 2 samples" \
    test "$(sqlite3 -readonly "$DB" "select kind || ' ' || json_extract(stats,'\$.power.mean') || ' ' || json_extract(stats,'\$.power.n') from device_state_snapshots where device_id='m_slow'")" = "interval 6.0 2"
check "schema version 4" test "$(sqlite3 -readonly "$DB" 'pragma user_version')" = 4

# A field the device does not have is a config error with its position.
sed 's/fields: \[power\]}/fields: [power, voltage]}/' "$T_DIR/config.yaml" >"$T_DIR/bad.yaml"
set +e
out=$("$WBMB_BIN" -c "$T_DIR/bad.yaml" --check-config 2>&1)
rc=$?
set -e
t_log "$out"
check "unknown history field: exit 6" test "$rc" = 6
check "unknown history field: FILE:LINE:COLUMN message" \
    grep -qE "bad.yaml:[0-9]+:[0-9]+: history fields of device 'm_int' names 'voltage'" <<<"$out"
t_done
