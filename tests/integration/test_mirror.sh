#!/usr/bin/env bash
# The Wiren Board mirror: device and control metas, values as 1/0, the
# bridge device, the Last Will, offline markers at shutdown, no mirror for
# wb_mirror: false, and our own publications never taken as input.
source "$(dirname "$0")/lib.sh"

start_broker
# A device whose state topic is a wildcard that also matches its own mirror
# topics: the bridge must not feed its publications back to itself.
basic_config "$T_DIR/config.yaml" "  - id: echo
    name: Echo
    state:
      - topic: /devices/+/controls/level
        field: level
        type: int"
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"

sub1() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$1" -C 1 -W 3 2>/dev/null; }
check "bridge device meta" wait_for 10 bash -c "mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/meta -C 1 -W 2 | jq -e '.driver == \"wb-mqtt-bridge\"'"
check "bridge scenario control is none" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/controls/scenario -C 1 -W 2)\" = none ]"
check "device meta has the title" wait_for 10 bash -c "mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/tv/meta -C 1 -W 2 | jq -e '.title.en == \"Test TV\"'"

pub -t /devices/relay/controls/K1 -m true
check "bool value mirrored as 1" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/tv/controls/power -C 1 -W 2)\" = 1 ]"
check "control meta is a readonly switch" \
    bash -c "mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/tv/controls/power/meta -C 1 -W 2 | jq -e '.type == \"switch\" and .readonly == true'"
pub -t test/sensor/temp -m 21.5
check "sensor state lands" wait_for 20 field_is device:sensor temperature 21.5
check "wb_mirror false publishes nothing" test -z "$(mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '/devices/sensor/#' -W 1 --retained-only 2>/dev/null || true)"

pub -t /devices/other/controls/level -m 7
check "wildcard state topic applied" wait_for 20 field_is device:echo level 7
check "echo mirrors its level" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/echo/controls/level -C 1 -W 2)\" = 7 ]"
stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
check "own publication was seen and ignored, never applied twice" log_has "applied=3 "
check "offline marker of the bridge after SIGTERM" bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/meta/error -C 1 -W 2)\" = offline ]"
check "offline marker of a mirrored device after SIGTERM" bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/tv/meta/error -C 1 -W 2)\" = offline ]"

# Restart clears the error marker; a SIGKILL leaves the Last Will.
start_bridge "$T_DIR/config.yaml"
check "error marker cleared on connect" wait_for 20 bash -c "[ -z \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/meta/error -C 1 -W 1 2>/dev/null)\" ]"
kill -KILL "$BRIDGE_PID"
wait "$BRIDGE_PID" 2>/dev/null || true
check "Last Will sets meta/error offline" wait_for 20 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/test_bridge/meta/error -C 1 -W 2)\" = offline ]"
t_done
