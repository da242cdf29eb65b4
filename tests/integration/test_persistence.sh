#!/usr/bin/env bash
# Publish -> state in the store (CLI and sqlite3), JSON field mapping,
# transient fields kept out of the DB, SIGTERM flushes and exits 0 within
# 5 s, a restart restores every device and republishes it retained.
source "$(dirname "$0")/lib.sh"

start_broker
basic_config "$T_DIR/config.yaml"
start_bridge "$T_DIR/config.yaml"
check "bridge connects to the broker" wait_for 30 log_has "MQTT connected"

pub -t /devices/relay/controls/K1 -m 1
pub -t test/counter/a -m 42
pub -t z2m/plug -m '{"power": 12.5, "meter": {"energy": 3.25}, "state": "ON", "other": 1}'
check "bool payload lands in the store" wait_for 20 field_is device:tv power true
check "int payload from a + topic lands in the store" wait_for 20 field_is device:counter value 42
check "JSON dotted-path mapping lands in the store" wait_for 20 field_is device:plug energy 3.25
check "JSON mapping keeps a plain key" field_is device:plug state '"ON"'
check "transient field is not persisted" field_is device:plug power_w null
check "unmapped JSON key is not taken" field_is device:plug other null
check "transient field is still mirrored" \
    wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/plug/controls/power_w -C 1 -W 2)\" = 12.5 ]"

# A message that changes nothing is no transition: no new history row.
rows_before=$(sql "$T_DIR/db/state.db" "select count(*) from device_state_snapshots where device_id='tv'")
pub -t /devices/relay/controls/K1 -m true
pub -t /devices/relay/controls/K1 -m 0
check "a real change is written" wait_for 20 field_is device:tv power false
rows_after=$(sql "$T_DIR/db/state.db" "select count(*) from device_state_snapshots where device_id='tv'")
check "unchanged message adds no history row (before=$rows_before after=$rows_after)" \
    test "$rows_after" -eq $((rows_before + 1))

pub -t /devices/relay/controls/K1 -m ON
check "ON is a valid bool" wait_for 20 field_is device:tv power true

t0=$(date +%s%N)
kill -TERM "$BRIDGE_PID"
check "SIGTERM stops the bridge within 5 s" wait_for 5 bash -c "! kill -0 $BRIDGE_PID"
rc=0
wait "$BRIDGE_PID" || rc=$?
check "SIGTERM exit code is 0 (got $rc)" test "$rc" -eq 0
t_log "shutdown took $((($(date +%s%N) - t0) / 1000000)) ms"

db="$T_DIR/db/state.db"
check "sqlite3 shows device:tv with power true" \
    bash -c "sqlite3 '$db' \"select value from state_store where key='device:tv'\" | jq -e '.power == true' >/dev/null"
check "updated_at is ISO-8601 UTC with ms" \
    bash -c "sqlite3 '$db' \"select updated_at from state_store where key='device:tv'\" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'"
check "history snapshots were written" \
    test "$(sql "$db" "select count(*) from device_state_snapshots where device_id='plug'")" -ge 1
check "no snapshot contains the transient field" \
    test "$(sql "$db" "select count(*) from device_state_snapshots where state like '%power_w%'")" -eq 0
check "integrity_check is ok" test "$(sql "$db" 'pragma integrity_check')" = ok

# Restart on a fresh broker (no retained messages): the bridge restores the
# state before connecting and republishes it retained.
stop_broker
start_broker "$MQTT_PORT"
start_bridge "$T_DIR/config.yaml"
check "bridge reconnects after restart" wait_for 30 bash -c "grep -c 'MQTT connected' '$T_DIR/bridge.log' | grep -q 2"
check "restore log line names 3 devices" log_has "restored 3 of 4 devices"
check "restored tv power republished retained as 1" \
    wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/tv/controls/power -C 1 -W 2)\" = 1 ]"
check "restored counter republished retained" \
    wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/counter/controls/value -C 1 -W 2)\" = 42 ]"
check "restored plug state republished retained" \
    wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/plug/controls/state -C 1 -W 2)\" = ON ]"
pub -t test/counter/b -m 43
check "applies messages after the restart" wait_for 20 field_is device:counter value 43
stop_bridge TERM; rc=$BRIDGE_RC
check "second SIGTERM exit code is 0" test "$rc" -eq 0
check "state after second run" field_is device:counter value 43
t_done
