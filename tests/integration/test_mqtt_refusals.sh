#!/usr/bin/env bash
# Issue 14, defect 6: commands the broker refuses are failures. A mosquitto
# with users and ACLs (dynamic security plugin) lets the bridge write
# cmd/allowed/# but not cmd/denied/#, and subscribe st/# but not secret/#.
# Over MQTT 5 (the default): an HTTP action to the denied topic answers 502
# with the broker's reason, its command_logs row is "failed" with "Not
# authorized (0x87)" in error, the optimistic set is not applied; the allowed
# action is "sent" only once acknowledged and reaches a subscriber; the
# same through an MQTT /on command; a refused subscription is logged at
# error level and counted. Over MQTT 3.1.1 the subscription refusal is seen
# (SUBACK 0x80) while the broker acknowledges the denied publication and
# drops it (what the README says 3.1.1 cannot tell).
source "$(dirname "$0")/lib.sh"

MQTT_PORT=$(free_port)
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
# mosquitto's dynamic security plugin: unlike acl_file (which accepts every
# subscription and filters deliveries) it refuses a SUBSCRIBE it does not
# allow, so both kinds of refusal are seen.
DYNSEC=$(ls /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so 2>/dev/null | head -1 || true)
[ -n "$DYNSEC" ] || { fail "mosquitto_dynamic_security.so not found"; t_done; exit 1; }
mosquitto_ctrl dynsec init "$T_DIR/dynsec.json" admin admin-secret >/dev/null
printf 'bridge-secret\n' >"$T_DIR/bridge.secret"
cat >"$T_DIR/mosquitto.conf" <<CONF
user $(id -un)
listener $MQTT_PORT 127.0.0.1
allow_anonymous false
plugin $DYNSEC
plugin_opt_config_file $T_DIR/dynsec.json
max_queued_messages 0
max_inflight_messages 0
persistence false
log_type all
CONF
mosquitto -c "$T_DIR/mosquitto.conf" >>"$T_DIR/mosquitto.log" 2>&1 &
T_PIDS+=("$!")
ctrl() { mosquitto_ctrl -h 127.0.0.1 -p "$MQTT_PORT" -u admin -P admin-secret dynsec "$@" >/dev/null; }
wait_for 20 ctrl listClients || { fail "broker with dynamic security up"; cat "$T_DIR/mosquitto.log"; t_done; exit 1; }
ctrl createRole bridge
ctrl addRoleACL bridge publishClientSend '/devices/#' allow
ctrl addRoleACL bridge publishClientSend 'cmd/allowed/#' allow
ctrl addRoleACL bridge subscribePattern '/devices/#' allow
ctrl addRoleACL bridge subscribePattern 'st/#' allow
ctrl createClient bridge -p bridge-secret
ctrl addClientRole bridge bridge
ctrl createRole tester
ctrl addRoleACL tester publishClientSend '#' allow
ctrl addRoleACL tester subscribePattern '#' allow
ctrl createClient tester -p tester-secret
ctrl addClientRole tester tester
tpub() { mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -u tester -P tester-secret -q 1 "$@"; }
check "test user can publish" wait_for 20 tpub -t st/ping -m x

refusal_config() { # FILE PROTOCOL
    cat >"$1" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-acl-$$
  username: bridge
  password_file: $T_DIR/bridge.secret
  keepalive_s: 5
  protocol: $2
persistence: {db_path: $T_DIR/db-$2/state.db, commit_interval_ms: 0}
http: {listen: "127.0.0.1:$HTTP_PORT"}
bridge: {device_id: test_bridge}
devices:
  - id: lamp
    name: Lamp
    state:
      - {topic: st/lamp/power, field: power, type: bool}
      - {topic: secret/lamp, field: secret, type: string}
    actions:
      allowed_on: {topic: cmd/allowed/lamp, payload: "1", set: {power: true}}
      denied_on: {topic: cmd/denied/lamp, payload: "1", set: {power: true, denied: true}}
YAML
}
metric() { curl -s "$BASE/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
cmd_row() { # COMMAND_ID -> "status|error"
    sqlite3 -readonly -batch -noheader "$DB" "SELECT status || '|' || coalesce(error, '') FROM command_logs WHERE command_id = '$1'"
}

# ---- MQTT 5 ------------------------------------------------------------------
refusal_config "$T_DIR/config.yaml" 5
DB="$T_DIR/db-5/state.db"
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/config.yaml"
check "MQTT 5: connected" wait_for 30 log_has "MQTT connected to .*MQTT 5"
check "MQTT 5: refused subscription logged at error level with its filter and reason" \
    wait_for 20 log_has "error +MQTT subscription to 'secret/lamp' refused: broker refused: Not authorized \(0x87\)"
check "MQTT 5: refused subscription counted" wait_for 10 bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"wbmb_mqtt_subscriptions_refused_total\" {print \$2}')\" = 1 ]"

mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -u tester -P tester-secret -v -t 'cmd/#' >"$T_DIR/cmds.txt" 2>/dev/null &
T_PIDS+=("$!")
wait_for 10 bash -c "tpub() { mosquitto_pub -h 127.0.0.1 -p $MQTT_PORT -u tester -P tester-secret -q 1 \"\$@\"; }; tpub -t cmd/probe -m p; grep -q cmd/probe '$T_DIR/cmds.txt'" || true

code=$(curl -s -o "$T_DIR/denied.json" -w '%{http_code}' -X POST -d '{"action":"denied_on"}' "$BASE/devices/lamp/action")
check "MQTT 5: denied action answers 502 (got $code)" test "$code" = 502
check "MQTT 5: its error names the broker's reason" grep -q 'Not authorized (0x87)' "$T_DIR/denied.json"
cid=$(grep -oE '[0-9a-f]{8}-[0-9a-f-]{27}' "$T_DIR/denied.json" | head -1)
check "MQTT 5: denied command logged as failed with the reason (${cid:-none})" \
    wait_for 10 bash -c "sqlite3 -readonly -batch -noheader '$DB' \"SELECT status || '|' || error FROM command_logs WHERE command_id = '$cid'\" | grep -q '^failed|.*Not authorized (0x87)'"
check "MQTT 5: the optimistic set is not applied" bash -c "[ \"\$(curl -s '$BASE/devices/lamp/state')\" = '{}' ]"
check "MQTT 5: the denied publication is counted" bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"wbmb_mqtt_publish_refused_total\" {print \$2}')\" = 1 ]"
# mosquitto 2.0.11 (Debian 12) closes the connection after it has sent the
# refusing PUBACK: the bridge logs the loss and is back within its 1 s backoff.
# (Until then an action answers 503: retried.)
check "MQTT 5: allowed action answers 200" wait_for 20 bash -c "[ \"\$(curl -s -o '$T_DIR/allowed.json' -w '%{http_code}' -X POST -d '{\"action\":\"allowed_on\"}' '$BASE/devices/lamp/action')\" = 200 ]"
check "MQTT 5: allowed action is sent, with its set applied" jq -e '.status == "sent" and .state.power == true' "$T_DIR/allowed.json"
check "MQTT 5: the device got the allowed command" wait_for 10 grep -q '^cmd/allowed/lamp 1$' "$T_DIR/cmds.txt"
check "MQTT 5: the denied command never reached a device" bash -c "! grep -q 'cmd/denied' '$T_DIR/cmds.txt'"

# The same refusal through the Wiren Board /on topic of the action (after the
# bridge has resubscribed).
wait_for 20 bash -c "[ \"\$(grep -c \"Received SUBSCRIBE from wbmb-acl-$$\" '$T_DIR/mosquitto.log')\" -ge 2 ]" || true
tpub -t /devices/lamp/controls/denied_on/on -m 1
check "MQTT 5: a denied /on command is logged as failed" \
    wait_for 10 bash -c "sqlite3 -readonly -batch -noheader '$DB' \"SELECT count(*) FROM command_logs WHERE source = 'mqtt' AND action = 'denied_on' AND status = 'failed' AND error LIKE '%Not authorized (0x87)%'\" | grep -qx 1"
check "MQTT 5: its control's meta/error is w" wait_for 10 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -u tester -P tester-secret -t /devices/lamp/controls/denied_on/meta/error -C 1 -W 2 --retained-only 2>/dev/null)\" = w ]"
check "MQTT 5: still no denied field in the state" bash -c "curl -s '$BASE/devices/lamp/state' | jq -e 'has(\"denied\") | not'"
stop_bridge TERM
check "MQTT 5: clean stop" test "$BRIDGE_RC" -eq 0

# ---- MQTT 3.1.1: what it can and cannot tell ------------------------------------
refusal_config "$T_DIR/config.yaml" 3.1.1
DB="$T_DIR/db-3.1.1/state.db"
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/config.yaml"
check "3.1.1: connected" wait_for 30 log_has "MQTT connected to .*MQTT 3.1.1"
check "3.1.1: refused subscription logged (SUBACK 0x80, no reason)" \
    wait_for 20 log_has "error +MQTT subscription to 'secret/lamp' refused: broker refused \(0x80; MQTT 3.1.1 gives no reason\)"
code=$(curl -s -o "$T_DIR/denied3.json" -w '%{http_code}' -X POST -d '{"action":"denied_on"}' "$BASE/devices/lamp/action")
t_log "3.1.1: a denied action answers $code: $(cat "$T_DIR/denied3.json")"
check "3.1.1: the broker acknowledges the denied publication: it counts as sent" jq -e '.status == "sent"' "$T_DIR/denied3.json"
check "3.1.1: and drops it: no device got it" bash -c "! grep -q 'cmd/denied' '$T_DIR/cmds.txt'"
stop_bridge TERM
check "3.1.1: clean stop" test "$BRIDGE_RC" -eq 0
t_done
