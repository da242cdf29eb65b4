#!/usr/bin/env bash
# The example flat (config/example.yaml) as the Wiren Board web UI sees it:
# tests/tools/wbui (a client that subscribes to /devices/#, builds the device
# model and checks every meta like the UI) finds no stale or wrong control;
# every control kind is operated with the payload the UI sends, and the
# device command and the state that comes back are checked; a Zigbee2MQTT
# 2.x plug going offline marks its controls "r"; a reload and a restart
# with a smaller config clear what they removed.
source "$(dirname "$0")/lib.sh"
: "${WBMB_WBUI:?WBMB_WBUI must point at the wbui test client}"

start_broker
EX="$WBMB_SOURCE_DIR/config/example.yaml"
BR=wb-mqtt-bridge
# The example, on this test's broker and folder, without the HTTP API.
sed -e "s#^  port: 1883#  port: $MQTT_PORT#" \
    -e "s#db_path: data/state_store.db#db_path: $T_DIR/db/state.db#" \
    -e 's#listen: 127.0.0.1:8080 .*#listen: ""#' "$EX" >"$T_DIR/config.yaml"
grep -q "port: $MQTT_PORT" "$T_DIR/config.yaml" || { echo "could not adapt the example"; exit 1; }

ui() { "$WBMB_WBUI" -p "$MQTT_PORT" "$@"; }
cmds() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v "$@" >>"$T_DIR/cmds.log" 2>/dev/null & T_PIDS+=($!); }
# sent TOPIC PAYLOAD: the device command arrived.
sent() { grep -qxF "$1 $2" "$T_DIR/cmds.log"; }

example_devices_retained
# The commands the bridge sends to the real devices.
cmds -t '/devices/wb-mr6c_1/controls/+/on' -t '/devices/wb-mdm3_1/controls/+/on' \
    -t '/devices/denon_avr/controls/+/on' -t 'zigbee2mqtt/kitchen_plug/set'
wait_for 10 bash -c "pgrep -f 'mosquitto_sub.*kitchen_plug/set' >/dev/null"

start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
check "every device's last control is shown" \
    wait_for 30 ui -t 3 wait amplifier show_text Hello
check "the energy is scaled (1500 Wh -> 1.5 kWh)" wait_for 20 ui wait kitchen_plug energy_kwh 1.5

# Not a single stale or wrong control anywhere.
DEVS=(living_room_tv hall_dimmer kitchen_plug bedroom_sensor amplifier "$BR")
args=()
for d in "${DEVS[@]}"; do args+=(--device "$d"); done
check "wbui check: the example flat is clean" bash -c "'$WBMB_WBUI' -p $MQTT_PORT -t 5 check ${args[*]} >'$T_DIR/check.txt'"
sed 's/^/# /' "$T_DIR/check.txt" | head -20
ui -t 5 dump >"$T_DIR/dump.json"
shown() { jq -e --arg d "$1" --arg c "$2" '.devices[$d].controls[$c].shown' "$T_DIR/dump.json" >/dev/null; }
kind() { jq -r --arg d "$1" --arg c "$2" '.devices[$d].controls[$c].type + (if .devices[$d].controls[$c].readonly then "/ro" else "/rw" end)' "$T_DIR/dump.json"; }
for dc in "living_room_tv power switch/rw" "hall_dimmer set_level range/rw" "hall_dimmer level value/ro" \
    "kitchen_plug power switch/rw" "kitchen_plug energy_kwh value/ro" "bedroom_sensor temperature value/ro" \
    "amplifier set_input text/rw" "amplifier set_volume range/rw" "amplifier set_balance value/rw" \
    "amplifier mute switch/rw" "amplifier show_text text/rw" "amplifier power_on pushbutton/rw" \
    "$BR scenario text/rw"; do
    set -- $dc
    check "$1/$2 is a shown $3 control (got $(kind "$1" "$2"))" bash -c "[ '$(kind "$1" "$2")' = '$3' ] && jq -e '.devices[\"$1\"].controls[\"$2\"].shown' '$T_DIR/dump.json'"
done
check "the scenario control offers movie, music and none" \
    jq -e ".devices[\"$BR\"].controls.scenario.meta.enum | keys == [\"movie\",\"music\",\"none\"]" "$T_DIR/dump.json"
check "a wb: block's units and Russian title reach the meta" \
    jq -e '.devices.amplifier.controls.volume.meta | .units == "%" and .title.ru == "Громкость"' "$T_DIR/dump.json"
check "legacy meta/type beside the JSON meta" \
    jq -e '.devices.amplifier.controls.set_volume.legacy.type == "range"' "$T_DIR/dump.json"

# Every control kind, operated as the UI does.
check "switch: pressing living_room_tv/power 1" ui press living_room_tv power 1
check "... turns the relay on" wait_for 10 sent /devices/wb-mr6c_1/controls/K1/on 1
check "... and the switch shows 1" wait_for 10 ui wait living_room_tv power 1
check "range: hall_dimmer/set_level 30" ui press hall_dimmer set_level 30
check "... dims the light to 30 (not 1)" wait_for 10 sent "/devices/wb-mdm3_1/controls/Channel 1/on" 30
check "... the level is 30 and the slider follows" \
    bash -c "ui() { '$WBMB_WBUI' -p $MQTT_PORT \"\$@\"; }; ui wait hall_dimmer level 30 && ui wait hall_dimmer set_level 30"
check "range: out of bounds is refused by the UI" bash -c "! '$WBMB_WBUI' -p $MQTT_PORT press hall_dimmer set_level 150"
check "text with enum: amplifier/set_input hdmi2" ui press amplifier set_input hdmi2
check "... switches the input" wait_for 10 sent /devices/denon_avr/controls/input/on hdmi2
check "... and the choice shows hdmi2" wait_for 10 ui wait amplifier set_input hdmi2
check "range: amplifier/set_volume 55" ui press amplifier set_volume 55
check "... sets the volume" wait_for 10 sent /devices/denon_avr/controls/volume/on 55
check "value: amplifier/set_balance -1.5" ui press amplifier set_balance -1.5
check "... sends it" wait_for 10 sent /devices/denon_avr/controls/balance/on -1.5
check "... and shows it (the last value sent: no field follows it)" ui wait amplifier set_balance -1.5
check "switch from a bool param: amplifier/mute 1" ui press amplifier mute 1
check "... mutes" wait_for 10 sent /devices/denon_avr/controls/mute/on true
check "text: amplifier/show_text Bonjour" ui press amplifier show_text Bonjour
check "... shows it" wait_for 10 sent /devices/denon_avr/controls/display/on Bonjour
check "pushbutton: amplifier/power_on" ui press amplifier power_on
check "... powers the receiver" wait_for 10 sent /devices/denon_avr/controls/power/on 1
check "mapped switch: kitchen_plug/power 1" ui press kitchen_plug power 1
check "... sends the Zigbee2MQTT command" wait_for 10 sent zigbee2mqtt/kitchen_plug/set '{"state": "ON"}'
pub -r -t zigbee2mqtt/kitchen_plug -m '{"state":"ON","power":120,"energy":1510,"voltage":231}'
check "... and the plug's ON comes back as 1" wait_for 10 ui wait kitchen_plug power 1
check "scenario: choosing movie" ui press "$BR" scenario movie
check "... runs it" wait_for 20 ui wait "$BR" scenario movie
check "... whose steps reach the devices" wait_for 10 sent "/devices/wb-mdm3_1/controls/Channel 1/on" 10
check "the command log has every kind" bash -c \
    "[ \$(sqlite3 -readonly '$T_DIR/db/state.db' \"select count(distinct device_id || '/' || action) from command_logs where source = 'mqtt' and status = 'sent'\") -ge 9 ]"

# Zigbee2MQTT 2.x availability: every control of the plug turns stale.
pub -r -t zigbee2mqtt/kitchen_plug/availability -m '{"state": "offline"}'
check "offline: the plug's switch shows r" wait_for 10 ui wait kitchen_plug power --error r
check "offline: its energy shows r, its value kept" \
    bash -c "ui() { '$WBMB_WBUI' -p $MQTT_PORT \"\$@\"; }; ui wait kitchen_plug energy_kwh --error r && ui wait kitchen_plug energy_kwh 1.51"
check "offline: its pushbutton shows r" wait_for 10 ui wait kitchen_plug on --error r
pub -r -t zigbee2mqtt/kitchen_plug/availability -m '{ "state" : "online" }'
check "online again: the marks are cleared" wait_for 10 ui wait kitchen_plug power --error ''
check "still clean after all that" bash -c "'$WBMB_WBUI' -p $MQTT_PORT -t 5 check ${args[*]} >'$T_DIR/check2.txt'"
sed 's/^/# /' "$T_DIR/check2.txt" | head -20

# A reload that removes the sensor and the receiver's text action.
python3 - "$T_DIR/config.yaml" "$T_DIR/smaller.yaml" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r"\n  # A WB-MSW v3 sensor.*?(?=\n  # An AV receiver)", "", s, flags=re.S)
s = re.sub(r"\n      show_text:.*?default: \"Hello\"\}", "", s, flags=re.S)
open(sys.argv[2], "w").write(s)
PY
check "the smaller config is valid" "$WBMB_BIN" -c "$T_DIR/smaller.yaml" --check-config
cp "$T_DIR/smaller.yaml" "$T_DIR/config.yaml"
kill -HUP "$BRIDGE_PID"
check "reload: the sensor's controls are gone" wait_for 20 ui wait bedroom_sensor temperature --gone
check "reload: the removed action is gone" wait_for 20 ui wait amplifier show_text --gone
check "reload: the sensor's device meta is gone" \
    bash -c "[ -z \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/bedroom_sensor/meta -C 1 -W 2 --retained-only)\" ]"
# (Values come back from the real devices' retained topics after the
# resubscription: only presence is checked from here on.)
present() { "$WBMB_WBUI" -p "$MQTT_PORT" -t 5 dump | jq -e --arg d "$1" --arg c "$2" '.devices[$d].controls[$c].shown'; }
check "reload: the rest stays" present amplifier set_volume

# A restart with a smaller config still: what the last run published and
# this one does not is cleared at the connect (remembered in the store).
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
check "the store remembers the published topics" bash -c \
    "'$WBMB_BIN' -c '$T_DIR/config.yaml' state get wb:published | jq -e '.hall_dimmer | test(\"set_level\")'"
python3 - "$T_DIR/config.yaml" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r"\n  # A WB-MDM3 dimmer.*?(?=\n  # A Zigbee plug)", "", s, flags=re.S)
s = s.replace(", hall_dimmer]", "]").replace("      - {device: hall_dimmer, action: set_level, params: {level: 10}}\n", "")
open(sys.argv[1], "w").write(s)
PY
check "the restart config is valid" "$WBMB_BIN" -c "$T_DIR/config.yaml" --check-config
check "before the restart the dimmer is still on the broker" present hall_dimmer level
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/config.yaml"
check "restarted bridge connects" wait_for 30 log_has "MQTT connected"
check "restart: the dimmer's controls are gone" wait_for 20 ui wait hall_dimmer set_level --gone
check "restart: its level too" wait_for 20 ui wait hall_dimmer level --gone
check "restart: the rest is there" present living_room_tv power
args=()
for d in living_room_tv kitchen_plug amplifier "$BR"; do args+=(--device "$d"); done
check "clean after the restart" bash -c "'$WBMB_WBUI' -p $MQTT_PORT -t 5 check ${args[*]} >'$T_DIR/check3.txt'"
sed 's/^/# /' "$T_DIR/check3.txt" | head -20
check "no dimmer device left in the UI model" bash -c \
    "'$WBMB_WBUI' -p $MQTT_PORT -t 5 dump | jq -e '.devices | has(\"hall_dimmer\") | not'"
stop_bridge TERM
check "no ASan/UBSan report" bash -c "! grep -qE 'AddressSanitizer|runtime error:' '$T_DIR/bridge.log'"
t_done
