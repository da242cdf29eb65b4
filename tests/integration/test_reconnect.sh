#!/usr/bin/env bash
# The broker goes away and comes back: the bridge reconnects, resubscribes,
# keeps applying, and republishes its retained topics on the new broker.
source "$(dirname "$0")/lib.sh"

start_broker
basic_config "$T_DIR/config.yaml"
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
pub -t test/counter/x -m 1
check "first value applied" wait_for 20 field_is device:counter value 1

for round in 1 2 3; do
    stop_broker
    check "round $round: connection loss is logged" wait_for 30 bash -c "[ \$(grep -c 'MQTT connection lost' '$T_DIR/bridge.log') -ge $round ]"
    check "round $round: bridge still runs without a broker" kill -0 "$BRIDGE_PID"
    start_broker "$MQTT_PORT"
    check "round $round: bridge reconnects" wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge $((round + 1)) ]"
    check "round $round: retained value republished on the fresh broker" \
        wait_for 20 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/counter/controls/value -C 1 -W 2)\" = $round ]"
    pub -t test/counter/x -m $((round + 1))
    check "round $round: resubscribed, new value applied" wait_for 20 field_is device:counter value $((round + 1))
done
stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
t_done
