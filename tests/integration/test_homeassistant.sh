#!/usr/bin/env bash
# Issue 18: the Home Assistant sink over a real broker, as Home Assistant
# sees it. tests/tools/hacheck.py (Home Assistant's MQTT discovery played
# with Debian's paho and jinja2: it validates every discovery payload, renders
# every template, works out each entity's state and availability) finds the
# example flat clean and with the entities the README lists; every entity
# kind is driven with the payload Home Assistant sends, and the device
# command, the command_logs row (source mqtt) and the state that comes back
# are checked; Home Assistant's birth message brings lost configs back after
# the delay; a kill -9 makes everything unavailable (the presence
# connection's Last Will); a reload, a restart with a smaller config and
# switching the sink off clear what they removed.
source "$(dirname "$0")/lib.sh"
: "${WBMB_HACHECK:?WBMB_HACHECK must point at tests/tools/hacheck.py}"

start_broker
HTTP_PORT=$(free_port)
EX="$WBMB_SOURCE_DIR/config/example.yaml"
BR=wb-mqtt-bridge
N=wb-mqtt-bridge # node_id, from bridge.device_id
# The example, on this test's broker and folder, Home Assistant's republish
# delay short.
sed -e "s#^  port: 1883#  port: $MQTT_PORT#" \
    -e "s#db_path: data/state_store.db#db_path: $T_DIR/db/state.db#" \
    -e "s#listen: 127.0.0.1:8080 .*#listen: 127.0.0.1:$HTTP_PORT#" \
    -e "s#republish_delay_ms: 1000 .*#republish_delay_ms: 300#" "$EX" >"$T_DIR/config.yaml"
grep -q "republish_delay_ms: 300" "$T_DIR/config.yaml" || { echo "could not adapt the example"; exit 1; }

ha() { /usr/bin/python3 "$WBMB_HACHECK" -p "$MQTT_PORT" "$@"; }
# st UID STATE: Home Assistant would show STATE for the entity.
st() { ha -t 10 wait "$N_$1" "$2" 2>/dev/null >/dev/null; }
cmds() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v "$@" >>"$T_DIR/cmds.log" 2>/dev/null & T_PIDS+=($!); }
sent() { grep -qxF "$1 $2" "$T_DIR/cmds.log"; }
logged() {
    curl -sf -m 5 "http://127.0.0.1:$HTTP_PORT/command-logs?device_id=$1&limit=20" |
        jq -e --arg a "$2" '[.[] | select(.action == $a and .source == "mqtt" and .status == "sent")] | length >= 1' >/dev/null
}

example_devices_retained
cmds -t '/devices/wb-mr6c_1/controls/+/on' -t '/devices/wb-mdm3_1/controls/+/on' \
    -t '/devices/denon_avr/controls/+/on' -t 'zigbee2mqtt/kitchen_plug/set'
wait_for 10 bash -c "pgrep -f 'mosquitto_sub.*kitchen_plug/set' >/dev/null"

start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
N_=${N}_
check "the plug's JSON field is announced with its first value" st kitchen_plug_voltage 230
check "hacheck: every discovery payload of the example is valid, 20 entities" \
    bash -c "ha() { /usr/bin/python3 '$WBMB_HACHECK' -p $MQTT_PORT \"\$@\"; }; ha -t 10 check --expect-entities 20 >'$T_DIR/check.txt'"
sed 's/^/# /' "$T_DIR/check.txt" | head -20
ha -t 10 dump >"$T_DIR/dump.json"

# The README's table of the example's entities is what Home Assistant gets.
check "the README lists exactly the example's entities" \
    /usr/bin/python3 - "$WBMB_SOURCE_DIR/README.md" "$T_DIR/dump.json" "$N" >"$T_DIR/table.txt" <<'PY'
import json, re, sys
readme, dump, node = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3]
sec = readme.split("**The example's entities**", 1)[1].split("\n\n", 2)[1]
want = set()
for line in sec.splitlines():
    m = re.match(r"\| `([^`]+)`[^|]*\| `([^`]+)` \| (\w+) \|", line)
    if m:
        want.add((m.group(1), m.group(2), m.group(3)))
got = set()
for obj, d in dump["devices"].items():
    for uid, e in d["entities"].items():
        got.add((obj, uid[len(f"{node}_{obj}_"):], e["platform"]))
print("only in the README:", sorted(want - got))
print("only announced:", sorted(got - want))
sys.exit(0 if want == got and len(want) == 20 else 1)
PY
sed 's/^/# /' "$T_DIR/table.txt"
ent() { jq -r --arg u "$N_$1" '[.devices[].entities[$u]] | map(select(. != null))[0] | '"$2" "$T_DIR/dump.json"; }
check "a temperature in deg C is a sensor in °C" [ "$(ent bedroom_sensor_temperature .state)" = 21.5 ]
check "... with its device class" \
    [ "$(jq -r '.devices.bedroom_sensor.config.components.temperature.device_class' "$T_DIR/dump.json")" = temperature ]
check "energy in kWh, scaled, total_increasing" [ "$(ent kitchen_plug_energy_kwh .state)" = 1.5 ]
check "the plug's switch shows off" [ "$(ent kitchen_plug_power .state)" = off ]
check "the amplifier's select shows the input field" [ "$(ent amplifier_set_input .state)" = hdmi1 ]
check "the number shows the volume field" [ "$(ent amplifier_set_volume .state)" = 25 ]
check "entities of an online device are available" [ "$(ent amplifier_volume .available)" = true ]
check "a timeout_s device is available once its messages came" [ "$(ent bedroom_sensor_humidity .available)" = true ]

# Every kind of entity, driven as Home Assistant drives it.
check "switch: living_room_tv power ON" ha command "${N_}living_room_tv_power" on
check "... turns the relay on" wait_for 10 sent /devices/wb-mr6c_1/controls/K1/on 1
pub -r -t /devices/wb-mr6c_1/controls/K1 -m 1
check "... and Home Assistant sees it on" st living_room_tv_power on
check "... one command_logs row, source mqtt" wait_for 10 logged living_room_tv power_on
check "switch: OFF" ha command "${N_}living_room_tv_power" off
check "... turns it off" wait_for 10 sent /devices/wb-mr6c_1/controls/K1/on 0
check "number: hall_dimmer set_level 70" ha command "${N_}hall_dimmer_set_level" 70
check "... dims to 70" wait_for 10 sent "/devices/wb-mdm3_1/controls/Channel 1/on" 70
pub -r -t "/devices/wb-mdm3_1/controls/Channel 1" -m 70
check "... the level comes back" st hall_dimmer_level 70
check "number out of range is refused by Home Assistant's own bounds" bash -c "! /usr/bin/python3 '$WBMB_HACHECK' -p $MQTT_PORT command ${N_}hall_dimmer_set_level 150"
check "select: amplifier set_input hdmi2" ha command "${N_}amplifier_set_input" hdmi2
check "... switches the input" wait_for 10 sent /devices/denon_avr/controls/input/on hdmi2
check "... the select shows it (set: optimistic after the PUBACK)" st amplifier_set_input hdmi2
check "number: amplifier set_balance -1.5" ha command "${N_}amplifier_set_balance" -1.5
check "... sends it" wait_for 10 sent /devices/denon_avr/controls/balance/on -1.5
check "switch from a bool param: amplifier mute ON" ha command "${N_}amplifier_mute" on
check "... mutes" wait_for 10 sent /devices/denon_avr/controls/mute/on true
check "text: amplifier show_text" ha command "${N_}amplifier_show_text" "Hi HA"
check "... shows it" wait_for 10 sent /devices/denon_avr/controls/display/on "Hi HA"
check "... its command_logs row" wait_for 10 logged amplifier show_text
check "mapped switch: kitchen_plug power ON" ha command "${N_}kitchen_plug_power" on
check "... sends the Zigbee2MQTT command" wait_for 10 sent zigbee2mqtt/kitchen_plug/set '{"state": "ON"}'
pub -r -t zigbee2mqtt/kitchen_plug -m '{"state":"ON","power":12,"energy":1510,"voltage":231}'
check "... and the plug's report comes back: on" st kitchen_plug_power on
check "... 12 W" st kitchen_plug_power_w 12
check "select on the bridge: scenario movie" ha command "${N_}${BR}_scenario" movie
check "... the scenario switches" st "${BR}_scenario" movie
check "... its status sensor says active" st "${BR}_scenario_status" active
check "Zigbee2MQTT-style offline makes the plug's entities unavailable" \
    bash -c "mosquitto_pub -h 127.0.0.1 -p $MQTT_PORT -r -t zigbee2mqtt/kitchen_plug/availability -m '{\"state\":\"offline\"}' && /usr/bin/python3 '$WBMB_HACHECK' -p $MQTT_PORT -t 10 wait ${N_}kitchen_plug_power --unavailable"
check "... and available again" \
    bash -c "mosquitto_pub -h 127.0.0.1 -p $MQTT_PORT -r -t zigbee2mqtt/kitchen_plug/availability -m '{\"state\":\"online\"}' && /usr/bin/python3 '$WBMB_HACHECK' -p $MQTT_PORT -t 10 wait ${N_}kitchen_plug_power --available"
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t "$BR/amplifier/volume/set" -m 3
check "a command for a field without actions is refused with a warning" \
    wait_for 10 log_has "amplifier has no action or switch 'volume'"

# Home Assistant restarts on a broker that lost the configs: its birth
# brings them back after republish_delay_ms.
pub -r -t "homeassistant/device/$N/living_room_tv/config" -n
check "a lost config is gone" ha -t 10 wait "${N_}living_room_tv_power" --gone
check "birth: homeassistant/status online" ha birth
check "... announced again after the delay" wait_for 10 log_has "Home Assistant is online: announcing again in 300 ms"
check "... the entity is back, with its state" st living_room_tv_power on
check "still valid" ha -t 10 check --expect-entities 20

# A crash: the presence connection's Last Will.
stop_bridge KILL
check "kill -9: the bridge's availability goes offline (Last Will)" \
    wait_for 20 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t $BR/$BR/availability -C 1 -W 2 --retained-only)\" = offline ]"
check "... every entity unavailable" ha -t 10 wait "${N_}amplifier_volume" --unavailable
check "... and the Wiren Board UI sees its own Last Will" \
    [ "$(retained_value "/devices/$BR/meta/error")" = offline ]
start_bridge "$T_DIR/config.yaml"
check "restarted: available again" ha -t 20 wait "${N_}amplifier_volume" --available
stop_bridge TERM
check "a clean stop says offline too" [ "$(retained_value "$BR/$BR/availability")" = offline ]

# Removal, on a flat of its own: a binary sensor, a button, a merged JSON
# object, and a device that goes away.
cat >"$T_DIR/small.yaml" <<YAML
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: wbmb-ha-$$, keepalive_s: 5}
persistence: {db_path: $T_DIR/db2/state.db, commit_interval_ms: 50}
http: {listen: ""}
bridge: {device_id: br2}
homeassistant: {enabled: true, discovery_prefix: ha2, node_id: n2, base_topic: hb2}
devices:
  - id: door
    state:
      - {topic: t/door, field: open, type: bool, homeassistant: {device_class: door}}
    actions:
      reboot: {topic: t/door/reboot, homeassistant: {device_class: restart, entity_category: config}}
      chime: {topic: t/door/chime}
  - id: climate
    state:
      - {topic: t/climate, type: json}
  - id: extra
    state:
      - {topic: t/extra, field: v, type: int}
YAML
sed -e '/^  - id: extra/,$d' -e '/chime:/d' "$T_DIR/small.yaml" >"$T_DIR/smaller.yaml"
cmds -t 't/door/+'
start_bridge "$T_DIR/small.yaml"
# (its own discovery prefix: the example's configs stay retained beside it)
ha2() { /usr/bin/python3 "$WBMB_HACHECK" -p "$MQTT_PORT" --prefix ha2 "$@"; }
s2() { ha2 -t 10 wait "$1" "$2" >/dev/null 2>&1; }
check "the small flat is announced" ha2 -t 20 wait n2_door_reboot --available
pub -t t/door -m 1
check "binary_sensor: the door is open" s2 n2_door_open on
pub -t t/door -m 0
check "... closed" s2 n2_door_open off
check "button: PRESS" ha2 command n2_door_reboot
check "... reboots" wait_for 10 sent t/door/reboot 1
pub -t t/climate -m '{"temperature": 20.5, "battery": 90, "info": {"fw": "1.2"}}'
check "a merged JSON object's fields become sensors" s2 n2_climate_temperature 20.5
check "... every one" s2 n2_climate_battery 90
pub -t t/extra -m 5
check "the extra device is there" s2 n2_extra_v 5
check "the small flat is valid: 6 entities and the bridge's 2" ha2 -t 10 check --expect-entities 8
cp "$T_DIR/smaller.yaml" "$T_DIR/small.yaml"
kill -HUP "$BRIDGE_PID"
check "reload: the removed device is cleared" ha2 -t 20 wait n2_extra_v --gone
check "... and its state topic" wait_for 10 bash -c "[ -z \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t hb2/extra/state -C 1 -W 1 --retained-only)\" ]"
check "... the removed action's entity too (a platform-only component)" ha2 -t 20 wait n2_door_chime --gone
check "... the rest stays valid" ha2 -t 10 check --expect-entities 6
stop_bridge TERM
sed -i '/^  - id: climate/,+2d' "$T_DIR/small.yaml"
start_bridge "$T_DIR/small.yaml"
check "restart with a smaller config: the climate device is cleared" ha2 -t 20 wait n2_climate_temperature --gone
check "... the door stays" ha2 -t 10 wait n2_door_open --available
stop_bridge TERM
sed -i 's/^homeassistant: .*/homeassistant: {enabled: false, discovery_prefix: ha2, node_id: n2, base_topic: hb2}/' "$T_DIR/small.yaml"
start_bridge "$T_DIR/small.yaml"
check "switched off: the devices leave Home Assistant" ha2 -t 20 wait n2_door_open --gone
check "... the bridge's own too" ha2 -t 20 wait n2_br2_scenario --gone
stop_bridge TERM
check "the bridge exited cleanly" [ "$BRIDGE_RC" = 0 ]
t_done
