#!/usr/bin/env bash
# SIGHUP reloads devices without a restart and without losing state; an
# invalid new config is rejected with FILE:LINE:COLUMN lines and the old one
# keeps running.
source "$(dirname "$0")/lib.sh"

start_broker
basic_config "$T_DIR/config.yaml"
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
pub -t z2m/plug -m '{"power": 5, "state": "ON"}'
check "plug state applied" wait_for 20 field_is device:plug state '"ON"'

basic_config "$T_DIR/config.yaml" "  - id: lamp
    name: Lamp
    state:
      - topic: test/lamp
        field: power
        type: bool"
kill -HUP "$BRIDGE_PID"
check "reload logged" wait_for 20 log_has "reload done: 5 devices"
pub -t test/lamp -m 1
check "new device is served without a restart" wait_for 20 field_is device:lamp power true
check "new device is mirrored" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/lamp/controls/power -C 1 -W 2)\" = 1 ]"
# The same plug message again: the in-memory state (with the transient
# power_w) was carried over, so this is no transition (counted at the end).
pub -t z2m/plug -m '{"power": 5, "state": "ON"}'

# Break the file: the reload is rejected and the running config stays.
cp "$T_DIR/config.yaml" "$T_DIR/good.yaml"
printf 'devices:\n  - id: BAD ID\n    bogus: 1\n' >"$T_DIR/config.yaml"
kill -HUP "$BRIDGE_PID"
check "invalid reload rejected" wait_for 20 log_has "reload rejected"
check "rejection names FILE:LINE:COLUMN" log_has "config.yaml:[0-9]+:[0-9]+: "
# Put the good file back (no SIGHUP) so the CLI below can read it.
cp "$T_DIR/good.yaml" "$T_DIR/config.yaml"
pub -t test/lamp -m 0
check "old config still serves the lamp" wait_for 20 field_is device:lamp power false
check "daemon still running" kill -0 "$BRIDGE_PID"
stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
check "state carried over the reload: repeated plug message changed nothing" \
    log_has "applied=3 unchanged=1 "
t_done
