#!/usr/bin/env bash
# Actions through the MQTT command surface: pushbutton controls, /on with a
# single value or a JSON object, invalid requests rejected with meta/error w
# and nothing published, retained /on ignored, every request in command_logs.
source "$(dirname "$0")/lib.sh"

start_broker
scenario_config "$T_DIR/config.yaml"
# A retained command left on the broker: delivered with the retain flag when
# the bridge subscribes, and never acted upon.
pub -r -t /devices/tv/controls/power_off/on -m 1
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t 'cmd/#' -v >"$T_DIR/cmds.log" 2>/dev/null &
T_PIDS+=($!)
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
# Control kinds (wb_controls.c): no params -> pushbutton; one enum param ->
# a writable text with the values as its enum.
check "pushbutton meta for an action without params" wait_for 10 bash -c "mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/tv/controls/power_on/meta -C 1 -W 2 | jq -e '.type == \"pushbutton\" and .readonly == false' >/dev/null"
check "writable text with an enum for a one-enum-param action" wait_for 10 bash -c "mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/amp/controls/set_input/meta -C 1 -W 2 | jq -e '.type == \"text\" and .readonly == false and (.enum | keys) == [\"hdmi1\",\"hdmi2\",\"optical\"]' >/dev/null"
db="$T_DIR/db/state.db"
rows() { sql "$db" "select count(*) from command_logs where $1"; }

pub -t /devices/tv/controls/power_on/on -m 1
check "no-param action published" wait_for 10 grep -qx "cmd/tv/power 1" "$T_DIR/cmds.log"
check "its set is persisted" wait_for 10 field_is device:tv power true
pub -t /devices/amp/controls/set_input/on -m hdmi2
check "single-param value published" wait_for 10 grep -qx "cmd/amp/input hdmi2" "$T_DIR/cmds.log"
check "typed set applied" wait_for 10 field_is device:amp input '"hdmi2"'
pub -t /devices/dimmer/controls/set_level/on -m '{"level": 30, "who": "a \"quoted\" user"}'
dimmer_ok() {
    grep '^cmd/dimmer/level ' "$T_DIR/cmds.log" | cut -d' ' -f2- | jq -r '.level, .by' |
        paste -sd'|' | grep -qx '30|a "quoted" user'
}
check "JSON template stays valid JSON with an escaped string" wait_for 10 dimmer_ok
check "int set from a template" wait_for 10 field_is device:dimmer level 30

pub -t /devices/amp/controls/set_input/on -m vga
check "invalid enum value rejected" wait_for 10 bash -c "[ \$(sqlite3 -readonly '$db' \"select count(*) from command_logs where status='rejected' and action='set_input'\") -eq 1 ]"
check "invalid request sets meta/error w" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/amp/controls/set_input/meta/error -C 1 -W 2)\" = w ]"
pub -t /devices/dimmer/controls/set_level/on -m '{"level": 300}'
check "out-of-range param rejected" wait_for 10 bash -c "[ \$(sqlite3 -readonly '$db' \"select count(*) from command_logs where status='rejected' and device_id='dimmer'\") -eq 1 ]"
pub -t /devices/dimmer/controls/set_level/on -m '{"level": '
check "malformed JSON params rejected" wait_for 10 bash -c "[ \$(sqlite3 -readonly '$db' \"select count(*) from command_logs where status='rejected' and device_id='dimmer'\") -eq 2 ]"
# Only the /on topics of real actions are subscribed: another control's /on
# (here a would-be action) is never taken as input, so it leaves no row.
pub -t /devices/tv/controls/no_such/on -m 1
pub -t /devices/amp/controls/set_input/on -m optical
check "valid request after the invalid one published" wait_for 10 grep -qx "cmd/amp/input optical" "$T_DIR/cmds.log"
check "success clears meta/error" wait_for 10 bash -c "[ -z \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/amp/controls/set_input/meta/error -C 1 -W 1 2>/dev/null)\" ]"
check "retained /on was ignored (no power off)" bash -c "! grep -qx 'cmd/tv/power 0' '$T_DIR/cmds.log'"
check "rejected requests published nothing" bash -c "! grep -Eq 'cmd/amp/input vga|\"level\": 300' '$T_DIR/cmds.log'"
check "sent rows: 4 from mqtt" test "$(rows "status='sent' and source='mqtt'")" -eq 4
check "command rows have UUIDs and params JSON" \
    bash -c "sqlite3 -readonly '$db' \"select command_id, params from command_logs where action='set_input' and status='sent' limit 1\" | grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\|\{\"input\":\"hdmi2\"\}$'"
check "completed_at set" test "$(rows "completed_at is null")" -eq 0
check "an /on of a non-action control left no row" test "$(rows "action='no_such'")" -eq 0

# The broker goes away: a command fails (status failed), nothing crashes.
stop_broker
check "connection loss seen" wait_for 30 log_has "MQTT connection lost"
start_broker "$MQTT_PORT"
check "reconnected" wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge 2 ]"
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
t_done
