#!/usr/bin/env bash
# SIGHUP reloads devices without a restart and without losing state; an
# invalid new config (wrong values, or not YAML at all) is rejected with
# FILE:LINE:COLUMN lines for every error and the old one keeps running; a
# valid SIGHUP afterwards still works.
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
check "every error of the rejected file is listed, each as FILE:LINE:COLUMN" \
    test "$(grep -cE 'config.yaml:(2:9|3:5): ' "$T_DIR/bridge.log")" -eq 2

# A file that is no longer YAML at all (an unclosed flow sequence, as left by
# an editor killed mid-save): rejected the same way, the daemon keeps going.
printf 'mqtt:\n  host: 127.0.0.1\ndevices: [\n  {id: x\n' >"$T_DIR/config.yaml"
kill -HUP "$BRIDGE_PID"
check "YAML syntax error: reload rejected" \
    wait_for 20 bash -c "[ \$(grep -c 'reload rejected' '$T_DIR/bridge.log') -ge 2 ]"
check "YAML syntax error names FILE:LINE:COLUMN" \
    bash -c "grep -A3 'SIGHUP: reloading' '$T_DIR/bridge.log' | tail -n 4 | grep -qE 'config.yaml:[0-9]+:[0-9]+: '"
cp "$T_DIR/good.yaml" "$T_DIR/config.yaml"
pub -t test/lamp -m 1
check "old config still serves after the second rejection" wait_for 20 field_is device:lamp power true
# The good file again: a later valid SIGHUP is not blocked by the rejections.
kill -HUP "$BRIDGE_PID"
check "valid reload after the rejections" \
    wait_for 20 bash -c "[ \$(grep -c 'reload done: 5 devices' '$T_DIR/bridge.log') -ge 2 ]"
check "daemon still running after three reloads" kill -0 "$BRIDGE_PID"
stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
check "state carried over the reload: repeated plug message changed nothing" \
    log_has "applied=4 unchanged=1 "
t_done
