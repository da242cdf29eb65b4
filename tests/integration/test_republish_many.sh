#!/usr/bin/env bash
# A config with many mirrored devices: after every connect (the first, after a
# broker restart, after a SIGHUP reload) every retained topic of every device
# reaches the broker with the device's current value, although the bridge
# republishes them in steps (a few hundred publications waiting at a time)
# rather than all at once.
source "$(dirname "$0")/lib.sh"

N=1500
start_broker
basic_config "$T_DIR/config.yaml" "$(python3 - "$N" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"  - id: many{i}\n    state:\n      - {{topic: many/{i}, field: value, type: int}}")
    if i % 100 == 0:
        print(f"    actions:\n      ping: {{topic: many/{i}/ping, payload: '1'}}")
PY
)"
python3 - "$N" >"$T_DIR/import.json" <<'PY'
import json, sys
print(json.dumps({f"device:many{i}": {"value": i} for i in range(int(sys.argv[1]))}))
PY
mkdir -p "$T_DIR/db" && : >"$T_DIR/db/state.db" # state import never creates a database
check "state import" "$WBMB_BIN" -c "$T_DIR/config.yaml" state import "$T_DIR/import.json"

# retained_lines FILTER: every retained message on FILTER now, "topic payload".
retained_lines() {
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$1" -W 3 --retained-only -F '%t %p' 2>/dev/null || true
}
# all_republished: every device's meta, value (= its index), control meta,
# and the pushbutton metas are retained on the broker (the cleared error
# marker is an empty payload: nothing is retained for it).
all_republished() {
    local values metas buttons
    values=$(retained_lines '/devices/+/controls/value' |
        awk -v n="$N" '{split($1, p, "/"); id = p[3]; sub("many", "", id); if (id == $2) ok++} END {print ok + 0}')
    metas=$(retained_lines '/devices/+/controls/value/meta' | grep -c '"readonly":true')
    buttons=$(retained_lines '/devices/+/controls/ping/meta' | grep -c pushbutton)
    echo "values $values, control metas $metas, pushbuttons $buttons" >"$T_DIR/counts"
    [ "$values" = "$N" ] && [ "$metas" = "$N" ] && [ "$buttons" = $((N / 100)) ] &&
        [ "$(retained_lines '/devices/+/meta' | grep -c '^/devices/many.*"driver":"wb-mqtt-bridge"')" = "$N" ]
}

start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 60 log_has "MQTT connected"
check "every retained topic of $N devices is published" wait_for 120 all_republished
t_log "$(cat "$T_DIR/counts")"

stop_broker
check "connection loss is logged" wait_for 30 log_has "MQTT connection lost"
start_broker "$MQTT_PORT"
check "bridge reconnects" wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge 2 ]"
pub -t many/7 -m 1007
check "live value applied during the republish" wait_for 30 field_is device:many7 value 1007
check "every retained topic is republished on the fresh broker" wait_for 120 bash -c \
    "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/many7/controls/value -C 1 -W 2)\" = 1007 ]"
# many7 now holds 1007, not 7: count the others plus that one.
N_CHECK=$N
all_republished_after_live() {
    local values
    values=$(retained_lines '/devices/+/controls/value' |
        awk '{split($1, p, "/"); id = p[3]; sub("many", "", id); if (id == $2 || (id == 7 && $2 == 1007)) ok++} END {print ok + 0}')
    echo "values $values" >"$T_DIR/counts"
    [ "$values" = "$N_CHECK" ] &&
        [ "$(retained_lines '/devices/+/meta' | grep -c '^/devices/many.*"driver":"wb-mqtt-bridge"')" = "$N" ]
}
check "after the reconnect: every device's value and meta" wait_for 120 all_republished_after_live
t_log "$(cat "$T_DIR/counts")"

# A reload while connected starts a new round (the broker is wiped first).
stop_broker
start_broker "$MQTT_PORT"
check "bridge reconnects again" wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge 3 ]"
kill -HUP "$BRIDGE_PID"
check "reload done" wait_for 30 log_has "reload done"
check "after connect and reload: every device's value and meta" wait_for 120 all_republished_after_live
t_log "$(cat "$T_DIR/counts")"

stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
t_done
