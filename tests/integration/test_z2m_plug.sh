#!/usr/bin/env bash
# Issue 17: a Zigbee2MQTT 2.x plug over a real broker. Availability arrives
# as JSON ({"state":"online"}, any white space) with the default config (a
# topic, no json_field); its state message carries "state":"ON"/"OFF",
# mapped to a bool, and energy in Wh, scaled to kWh. Plain bindings with a
# map and a scale too. Everything is checked through the HTTP API.
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
cat >"$T_DIR/config.yaml" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-test-$$
  keepalive_s: 5
persistence:
  db_path: $T_DIR/db/state.db
  commit_interval_ms: 50
http:
  listen: 127.0.0.1:$HTTP_PORT
bridge:
  device_id: test_bridge
devices:
  - id: plug
    name: Plug
    type: plug
    state:
      - topic: zigbee2mqtt/plug
        type: json
        fields:
          power_on:
            path: state
            map: {"ON": true, "OFF": false}
            switch: {on: turn_on, off: turn_off}
            wb: {title: {en: Power, ru: Питание}}
          energy_kwh: {path: energy, scale: 0.001, wb: {units: kWh}}
          power_w: power
    availability:
      topic: zigbee2mqtt/plug/availability
    actions:
      turn_on: {topic: zigbee2mqtt/plug/set, payload: '{"state":"ON"}', set: {power_on: true}}
      turn_off: {topic: zigbee2mqtt/plug/set, payload: '{"state":"OFF"}', set: {power_on: false}}
  - id: relay
    name: Relay
    state:
      - topic: test/relay
        type: bool
        field: on
        map: {"ON": true, "OFF": false}
      - topic: test/level
        type: float
        field: level
        scale: 0.1
YAML
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
check "HTTP answers" wait_for 20 curl -sf "$BASE/health"
dev() { curl -sf -m 5 "$BASE/devices/$1" | jq -c "$2"; }
dev_is() { [ "$(dev "$1" "$2")" = "$3" ]; }

check "plug starts not online" dev_is plug .online false
pub -t zigbee2mqtt/plug/availability -m '{"state":"online"}'
check "Z2M 2.x {\"state\":\"online\"} brings the plug online" wait_for 20 dev_is plug .online true
pub -t zigbee2mqtt/plug/availability -m '{"state": "offline"}'
check "{\"state\": \"offline\"} takes it offline" wait_for 20 dev_is plug .online false
pub -t zigbee2mqtt/plug/availability -m ' { "state":"online" } '
check "white space around and inside the JSON is irrelevant" wait_for 20 dev_is plug .online true
pub -t zigbee2mqtt/plug/availability -m '{"status":"offline"}'
check "a JSON object without the state key is rejected" wait_for 10 log_has "availability payload '\\{\"status\":\"offline\"\\}'"
check "... and changes nothing" dev_is plug .online true
pub -t zigbee2mqtt/plug/availability -m 'offline '
check "a plain payload is compared trimmed" wait_for 20 dev_is plug .online false
pub -t zigbee2mqtt/plug/availability -m online

pub -t zigbee2mqtt/plug -m '{"state":"ON","power":12.5,"energy":1500,"linkquality":80}'
check "\"state\":\"ON\" is mapped to true" wait_for 20 dev_is plug .state.power_on true
check "energy 1500 Wh scaled to 1.5 kWh" dev_is plug .state.energy_kwh 1.5
check "an unmapped, unscaled field as it came" dev_is plug .state.power_w 12.5
check "an unlisted key is not a field" dev_is plug .state.linkquality null
pub -t zigbee2mqtt/plug -m '{"state":"OFF","energy":2000}'
check "\"state\":\"OFF\" is mapped to false" wait_for 20 dev_is plug .state.power_on false
check "2000 * 0.001 stays an integer" dev_is plug .state.energy_kwh 2
pub -t zigbee2mqtt/plug -m '{"state":"TOGGLING"}'
check "an unmapped text is stored as it came" wait_for 20 dev_is plug .state.power_on '"TOGGLING"'

pub -t test/relay -m ON
check "plain bool binding: ON mapped to true" wait_for 20 dev_is relay .state.on true
pub -t test/relay -m 0
check "plain bool binding: unmapped 0 converted as before" wait_for 20 dev_is relay .state.on false
pub -t test/relay -m maybe
check "plain bool binding: an unmapped bad payload is rejected" wait_for 10 log_has "rejected message on 'test/relay'"
check "... and the field keeps its value" dev_is relay .state.on false
pub -t test/level -m 235
check "plain float binding: 235 * 0.1" wait_for 20 dev_is relay .state.level 23.5

stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
t_done
