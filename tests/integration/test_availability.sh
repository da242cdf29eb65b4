#!/usr/bin/env bash
# Availability by topic and by timeout: device_connection_logs and devices rows.
source "$(dirname "$0")/lib.sh"

start_broker
basic_config "$T_DIR/config.yaml"
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
db="$T_DIR/db/state.db"
events() { sql "$db" "select group_concat(event, ',') from (select event from device_connection_logs where device_id='$1' order by id)"; }

pub -t z2m/plug/availability -m online
check "online row for the plug" wait_for 20 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select group_concat(event, ',') from (select event from device_connection_logs where device_id='plug' order by id)\")\" = online ]"
check "devices row says online" wait_for 20 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select is_online from devices where device_id='plug'\")\" = 1 ]"
pub -t z2m/plug/availability -m offline
check "offline row for the plug" wait_for 20 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select group_concat(event, ',') from (select event from device_connection_logs where device_id='plug' order by id)\")\" = online,offline ]"
check "devices row says offline" wait_for 20 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select is_online from devices where device_id='plug'\")\" = 0 ]"
pub -t z2m/plug/availability -m maybe
check "unknown availability payload is rejected" wait_for 10 log_has "availability payload 'maybe'"

pub -t test/sensor/temp -m 20.0
check "state message brings the sensor online" wait_for 20 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select group_concat(event, ',') from (select event from device_connection_logs where device_id='sensor' order by id)\")\" = online ]"
check "no state message for 2 s: timeout row" wait_for 30 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select group_concat(event, ',') from (select event from device_connection_logs where device_id='sensor' order by id)\")\" = online,timeout ]"
pub -t test/sensor/temp -m 20.5
check "back online after the timeout" wait_for 20 bash -c "[ \"\$(sqlite3 -readonly '$db' \"select group_concat(event, ',') from (select event from device_connection_logs where device_id='sensor' order by id)\")\" = online,timeout,online ]"
check "connection rows have ISO time stamps" bash -c "sqlite3 -readonly '$db' 'select ts from device_connection_logs' | grep -Evq 'Z$' && exit 1 || exit 0"
check "devices table lists every configured device" test "$(sql "$db" 'select count(*) from devices')" -eq 4
stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
t_done
