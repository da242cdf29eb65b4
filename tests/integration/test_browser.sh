#!/usr/bin/env bash
# The web page in a real (headless Debian chromium) browser against the real
# binary: the page loads, a state change made with mosquitto_pub appears
# without a reload, a scenario switch button works (checked through
# /scenario/state), the history graphs (time axis, value under the pointer,
# the 1 h / 24 h / 7 d range picker and the requests it makes), and a
# screenshot lands in $WBMB_BUILD_DIR/page.png.
# scripts/deps-browser.sh installs chromium and playwright-core first.
source "$(dirname "$0")/lib.sh"

"$WBMB_SOURCE_DIR/scripts/deps-browser.sh"

start_broker
HTTP_PORT=$(free_port)
TOKEN="tok-$RANDOM-$RANDOM"
printf '%s\n' "$TOKEN" >"$T_DIR/token"
cat >"$T_DIR/config.yaml" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-test-$$
persistence:
  db_path: $T_DIR/db/state.db
  commit_interval_ms: 50
http:
  listen: 127.0.0.1:$HTTP_PORT
  token_file: $T_DIR/token
bridge:
  device_id: test_bridge
devices:
  - id: tv
    name: Living room TV
    type: tv
    state:
      - topic: /devices/relay/controls/K1
        field: power
        type: bool
      - topic: /devices/tv_ir/controls/volume
        field: volume
        type: int
    actions:
      power_on:
        topic: /devices/relay/controls/K1/on
        payload: "1"
        set: {power: true}
      power_off:
        topic: /devices/relay/controls/K1/on
        payload: "0"
        set: {power: false}
      set_volume:
        topic: /devices/tv/controls/volume/on
        payload: "{level}"
        params:
          level: {type: int, min: 0, max: 100, required: true}
        set: {volume: "{level}"}
  - id: plug
    name: TV plug
    type: plug
    state:
      - topic: z2m/plug
        type: json
        fields: {power_w: power, energy: energy}
    availability:
      topic: z2m/plug/availability
      online: online
      offline: offline
scenarios:
  - id: movie
    name: Movie night
    devices: [tv]
    startup:
      - {device: tv, action: set_volume, params: {level: 25}}
    shutdown:
      - {device: tv, action: power_off}
YAML
start_bridge "$T_DIR/config.yaml"
check "HTTP answers" wait_for 20 curl -sf "http://127.0.0.1:$HTTP_PORT/health"
check "MQTT connected" wait_for 30 log_has "MQTT connected"
# some history and a live plug before the page loads
pub -t /devices/relay/controls/K1 -m 0
for v in 10 20 15 30; do pub -t /devices/tv_ir/controls/volume -m "$v"; done
pub -t z2m/plug/availability -m online
pub -t z2m/plug -m '{"power": 41.5, "energy": 12.25}'
check "state arrived" wait_for 10 bash -c "curl -sf http://127.0.0.1:$HTTP_PORT/devices/tv/state | jq -e '.volume == 30'"

export WBMB_HTTP_BASE="http://127.0.0.1:$HTTP_PORT" WBMB_TOKEN="$TOKEN"
export WBMB_CHANGE_CMD="mosquitto_pub -h 127.0.0.1 -p $MQTT_PORT -q 1 -t /devices/relay/controls/K1 -m 1"
export WBMB_PUB_CMD="mosquitto_pub -h 127.0.0.1 -p $MQTT_PORT -q 1"
export WBMB_BUILD_DIR="${WBMB_BUILD_DIR:-$T_DIR}"
check "browser test" node "$WBMB_SOURCE_DIR/tests/browser/page.test.mjs"
check "screenshot saved" test -s "$WBMB_BUILD_DIR/page.png"
t_done
