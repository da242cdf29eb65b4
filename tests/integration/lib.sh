# lib.sh - shared helpers of the integration tests (sourced, not run).
#
# Each test gets its own temp folder, a real mosquitto on a free loopback
# port (never 1883, max_queued_messages 0 so the broker drops nothing) and
# the real wb-mqtt-bridge binary from $WBMB_BIN. Everything started here is
# stopped by the EXIT trap. Waiting is always "poll until a condition holds or
# a generous deadline passes", never a fixed sleep.

set -euo pipefail

: "${WBMB_BIN:?WBMB_BIN must point at the wb-mqtt-bridge binary}"
: "${WBMB_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${WBMB_TEST_DATA:=$WBMB_SOURCE_DIR/tests/data}"

T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wbmb-test.XXXXXX")
T_PIDS=()
T_FAILS=0
T_PASSES=0
MQTT_PORT=""
BRIDGE_PID=""

t_cleanup() {
    local pid
    for pid in "${T_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${T_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${T_KEEP:-0}" = 1 ] || [ "$T_FAILS" -gt 0 ]; then
        echo "# test files kept in $T_DIR"
    else
        rm -rf "$T_DIR"
    fi
}
trap t_cleanup EXIT

t_log() { echo "# $*"; }
ok() { T_PASSES=$((T_PASSES + 1)); echo "ok - $*"; }
fail() {
    T_FAILS=$((T_FAILS + 1))
    echo "not ok - $*"
    if [ -f "$T_DIR/bridge.log" ]; then
        echo "# --- last bridge log lines ---"
        tail -n 30 "$T_DIR/bridge.log" | sed 's/^/# /'
    fi
}
# check DESCRIPTION COMMAND...: runs the command, records ok/not ok.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# t_done: prints the closing line and exits non-zero on any failure.
t_done() {
    echo "$T_PASSES passed, $T_FAILS failed"
    [ "$T_FAILS" -eq 0 ]
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# wait_for TIMEOUT_S COMMAND...: polls the command every 50 ms until it
# succeeds; returns 1 when the deadline passes.
wait_for() {
    local timeout=$1
    shift
    local deadline=$(($(date +%s%N) / 1000000 + timeout * 1000))
    while ! "$@" >/dev/null 2>&1; do
        if [ $(($(date +%s%N) / 1000000)) -ge $deadline ]; then
            return 1
        fi
        sleep 0.05
    done
}

# start_broker [PORT]: starts mosquitto on 127.0.0.1 and waits until it answers.
start_broker() {
    MQTT_PORT=${1:-${MQTT_PORT:-$(free_port)}}
    cat >"$T_DIR/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages 0
persistence false
CONF
    mosquitto -c "$T_DIR/mosquitto.conf" >>"$T_DIR/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    T_PIDS+=("$BROKER_PID")
    wait_for 20 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t wbmb/test/ping -m x -q 0 ||
        { echo "mosquitto did not start"; cat "$T_DIR/mosquitto.log"; return 1; }
}

stop_broker() {
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
}

# start_bridge CONFIG [ARGS...]: runs the real binary in the background,
# logging to $T_DIR/bridge.log.
start_bridge() {
    local cfg=$1
    shift
    "$WBMB_BIN" -c "$cfg" --log-level debug "$@" >>"$T_DIR/bridge.log" 2>&1 &
    BRIDGE_PID=$!
    T_PIDS+=("$BRIDGE_PID")
}

# stop_bridge [SIGNAL]: signals the bridge and waits for it; its exit code is
# left in BRIDGE_RC (not printed: a $(...) subshell could not wait for it).
BRIDGE_RC=""
stop_bridge() {
    local sig=${1:-TERM}
    BRIDGE_RC=0
    kill -"$sig" "$BRIDGE_PID" 2>/dev/null || true
    wait "$BRIDGE_PID" || BRIDGE_RC=$?
}

pub() { mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 "$@"; }

# retained_value TOPIC: prints the retained payload of TOPIC (empty when none).
retained_value() {
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$1" -C 1 -W 2 --retained-only 2>/dev/null || true
}

# example_devices_retained: the retained state of config/example.yaml's
# real devices, as their drivers publish it (test_wb_ui, test_homeassistant).
example_devices_retained() {
    pub -r -t /devices/wb-mr6c_1/controls/K1 -m 0
    pub -r -t "/devices/wb-mdm3_1/controls/Channel 1" -m 40
    pub -r -t /devices/wb-mdm3_1/controls/K1 -m 1
    pub -r -t /devices/denon_avr/controls/power -m 0
    pub -r -t /devices/denon_avr/controls/input -m hdmi1
    pub -r -t /devices/denon_avr/controls/volume -m 25
    pub -r -t /devices/wb-msw-v3_1/controls/Temperature -m 21.5
    pub -r -t /devices/wb-msw-v3_1/controls/Humidity -m 40
    pub -r -t zigbee2mqtt/kitchen_plug -m '{"state":"OFF","power":0,"energy":1500,"voltage":230}'
    pub -r -t zigbee2mqtt/kitchen_plug/availability -m '{"state":"online"}'
}

# sql DB QUERY: runs a read-only query with the sqlite3 shell.
sql() { sqlite3 -readonly -batch -noheader "$1" "$2"; }

# basic_config FILE [EXTRA_DEVICES_YAML]: a small flat for the tests: a relay
# (bool), a counter (int), a Zigbee plug (JSON with a field mapping and a
# transient field, availability topic) and a sensor (float, timeout 2 s).
basic_config() {
    local file=$1 extra=${2:-}
    cat >"$file" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-test-$$
  keepalive_s: 5
persistence:
  db_path: $T_DIR/db/state.db
  commit_interval_ms: 50
  history:
    enabled: true
    max_rows_per_device: 1000
    max_age_days: 30
http:
  listen: ""
bridge:
  device_id: test_bridge
devices:
  - id: tv
    name: Test TV
    type: tv
    state:
      - topic: /devices/relay/controls/K1
        field: power
        type: bool
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
        fields: {power_w: power, energy: meter.energy, state: state}
    transient: [power_w]
    availability:
      topic: z2m/plug/availability
      online: online
      offline: offline
  - id: sensor
    name: Sensor
    type: sensor
    wb_mirror: false
    state:
      - topic: test/sensor/temp
        field: temperature
        type: float
    availability:
      timeout_s: 2
$extra
YAML
}

# state_get KEY: the value of KEY in the store (compact JSON), via the CLI.
state_get() { "$WBMB_BIN" -c "$T_DIR/config.yaml" state get "$1" 2>/dev/null | jq -c .; }
# state_field KEY FIELD: one field of a stored value.
state_field() { "$WBMB_BIN" -c "$T_DIR/config.yaml" state get "$1" 2>/dev/null | jq -c ".$2"; }
# field_is KEY FIELD EXPECTED: true when the stored field equals EXPECTED (JSON text).
field_is() { [ "$(state_field "$1" "$2")" = "$3" ]; }
# log_has PATTERN: true when the bridge log contains PATTERN (grep -E).
log_has() { grep -qE "$1" "$T_DIR/bridge.log"; }

# scenario_config FILE: devices with actions publishing to cmd/..., and
# scenarios that share the amplifier (for the action/scenario tests).
scenario_config() {
    cat >"$1" <<YAML
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: wbmb-test-$$, keepalive_s: 5}
persistence: {db_path: $T_DIR/db/state.db, commit_interval_ms: 50}
http: {listen: "${HTTP_LISTEN:-}"}
bridge: {device_id: test_bridge}
devices:
  - id: tv
    name: TV
    state:
      - {topic: st/tv/power, field: power, type: bool}
    actions:
      power_on: {topic: cmd/tv/power, payload: "1", set: {power: true}}
      power_off: {topic: cmd/tv/power, payload: "0", set: {power: false}}
  - id: amp
    name: Amplifier
    state:
      - {topic: st/amp/power, field: power, type: bool}
    actions:
      power_on: {topic: cmd/amp/power, payload: "1", set: {power: true}}
      power_off: {topic: cmd/amp/power, payload: "0", set: {power: false}}
      set_input:
        topic: cmd/amp/input
        payload: "{input}"
        params: {input: {type: enum, values: [hdmi1, hdmi2, optical], required: true}}
        set: {input: "{input}"}
  - id: speaker
    name: Speaker
    actions:
      power_on: {topic: cmd/speaker/power, payload: "1", set: {power: true}}
      power_off: {topic: cmd/speaker/power, payload: "0", set: {power: false}}
  - id: dimmer
    name: Dimmer
    actions:
      set_level:
        topic: cmd/dimmer/level
        payload: '{"level": {level}, "by": "{who}"}'
        params:
          level: {type: int, min: 0, max: 100}
          who: {type: string, default: bridge}
        set: {level: "{level}"}
scenarios:
  - id: movie
    name: Movie
    devices: [tv, amp]
    startup:
      - {device: tv, action: power_on, when: "power != true"}
      - {device: amp, action: power_on, delay_after_ms: 300}
      - {device: amp, action: set_input, params: {input: hdmi1}}
    shutdown:
      - {device: tv, action: power_off}
      - {device: amp, action: power_off}
  - id: music
    name: Music
    devices: [amp, speaker]
    startup:
      - {device: amp, action: power_on, when: "power != true"}
      - {device: amp, action: set_input, params: {input: optical}}
      - {device: speaker, action: power_on}
    shutdown:
      - {device: amp, action: power_off}
      - {device: speaker, action: power_off}
  - id: slow
    name: Slow
    devices: [speaker]
    startup:
      - {device: speaker, action: power_on, delay_after_ms: 3000}
      - {device: speaker, action: power_off}
    shutdown: []
  - id: broken
    name: Broken
    devices: [dimmer, speaker]
    startup:
      - {device: dimmer, action: set_level}
      - {device: speaker, action: power_on}
    shutdown: []
YAML
}

# A test PKI in folder $P (set by the caller), made with openssl.
# mkca NAME CN: a self-signed CA. mkcert NAME CN CA [SAN] [DAYS]: a
# certificate signed by CA, with the subjectAltName SAN (none when empty),
# valid for DAYS (default 2; -1 makes an expired one).
mkca() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" -keyout "$P/$1.key" -out "$P/$1.crt" 2>/dev/null; }
mkcert() {
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$P/$1.key" -out "$P/$1.csr" 2>/dev/null
    if [ -n "${4:-}" ]; then printf 'subjectAltName=%s\n' "$4" >"$P/$1.ext"; else : >"$P/$1.ext"; fi
    openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.crt" -CAkey "$P/$3.key" -CAcreateserial -days "${5:-2}" \
        -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}
