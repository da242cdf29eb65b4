#!/usr/bin/env bash
# Malformed payloads are rejected, counted and change nothing; the daemon
# never crashes on input.
source "$(dirname "$0")/lib.sh"

start_broker
basic_config "$T_DIR/config.yaml" "  - id: label
    name: Label
    state:
      - topic: test/label
        field: text
        type: string"
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
pub -t test/counter/a -m 42
pub -t z2m/plug -m '{"state": "ON"}'
pub -t test/label -m 'hello'
check "valid values applied" wait_for 20 field_is device:label text '"hello"'
check "valid counter applied" wait_for 20 field_is device:counter value 42

bad=0
send_bad() { pub "$@"; bad=$((bad + 1)); }
send_bad -t test/counter/a -m abc
send_bad -t test/counter/a -m 1.5
send_bad -t test/counter/a -m 99999999999999999999
send_bad -t test/counter/a -m ''
send_bad -t /devices/relay/controls/K1 -m maybe
send_bad -t test/sensor/temp -m nan
send_bad -t z2m/plug -m '{"state": '
send_bad -t z2m/plug -m '[1, 2]'
send_bad -t z2m/plug -m '{"state": "OFF"} trailing'
printf '\xff\xfe\xfd' >"$T_DIR/bad_utf8"
send_bad -t test/label -f "$T_DIR/bad_utf8"
printf '{"state": "\xc0\xaf"}' >"$T_DIR/bad_utf8_json"
send_bad -t z2m/plug -f "$T_DIR/bad_utf8_json"
python3 -c "print('[' * 100 + ']' * 100)" >"$T_DIR/deep.json"
send_bad -t z2m/plug -f "$T_DIR/deep.json"
head -c 1048576 /dev/zero | tr '\0' 'a' >"$T_DIR/big"
send_bad -t test/label -f "$T_DIR/big"
# A marker published last: once it is applied every bad message before it
# was handled (one queue, in order).
pub -t test/label -m marker
check "marker applied after the bad messages" wait_for 30 field_is device:label text '"marker"'
check "daemon still running" kill -0 "$BRIDGE_PID"
check "counter unchanged" field_is device:counter value 42
check "plug unchanged" field_is device:plug state '"ON"'
check "rejections are logged with the reason" log_has "expected"
check "oversized payload named in the log" log_has "over the [0-9]+ byte limit"
stop_bridge TERM; rc=$BRIDGE_RC
check "clean stop" test "$rc" -eq 0
check "every bad message counted as rejected ($bad)" log_has "rejected=$bad "
check "integrity_check ok" test "$(sql "$T_DIR/db/state.db" 'pragma integrity_check')" = ok
t_done
