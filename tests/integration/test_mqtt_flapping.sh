#!/usr/bin/env bash
# Issue 14, defect 1 (health): a connection that keeps dropping. Another
# client taking over the bridge's client id makes mosquitto close the
# bridge's connection; the bridge reconnects within its 1 s backoff. Before,
# /health stayed "ok" through such a loop (each short connection restarted
# the 30 s grace). Now: each loss is logged and counted
# (wbmb_mqtt_disconnects_total), more than mqtt.flap_disconnects losses
# within mqtt.flap_window_s make /health 503 with "mqtt":"flapping" (also
# while connected at that moment), and it comes back to "ok" once the
# losses leave the window. Then a small MQTT 5 server that ends each
# connection with a DISCONNECT reason code (mosquitto 2.0.11 sends none: it
# closes the socket): the bridge logs the broker's reason for each loss.
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
CID="wbmb-flap-$$"
cat >"$T_DIR/config.yaml" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: $CID
  keepalive_s: 5
  flap_disconnects: 2
  flap_window_s: 12
persistence: {db_path: $T_DIR/db/state.db, commit_interval_ms: 50}
http: {listen: "127.0.0.1:$HTTP_PORT"}
bridge: {device_id: test_bridge}
devices:
  - id: tv
    state:
      - {topic: st/tv/power, field: power, type: bool}
YAML
metric() { curl -s "$BASE/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
connects_are() { [ "$(metric wbmb_mqtt_connects_total)" = "$1" ]; }
health_is() { # STATUS_CODE MQTT
    local body code
    code=$(curl -s -o "$T_DIR/health.json" -w '%{http_code}' "$BASE/health")
    [ "$code" = "$1" ] && jq -e --arg m "$2" '.mqtt == $m' "$T_DIR/health.json" >/dev/null
}

start_bridge "$T_DIR/config.yaml"
check "connected" wait_for 30 connects_are 1
check "health ok while the connection holds" health_is 200 connected

# Three take-overs, each after the bridge is back: three losses in a few
# seconds, more than flap_disconnects (2).
for i in 1 2 3; do
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -i "$CID" -t wbmb/takeover -m "$i" -q 1
    check "take-over $i: reconnected" wait_for 30 connects_are $((i + 1))
    if [ "$i" -lt 3 ]; then
        check "take-over $i: not flapping yet" health_is 200 connected
    fi
done
check "each loss logged" bash -c "[ \$(grep -cE 'MQTT connection lost: ' '$T_DIR/bridge.log') -eq 3 ]"
check "wbmb_mqtt_disconnects_total counts them" bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"wbmb_mqtt_disconnects_total\" {print \$2}')\" = 3 ]"
check "/health: 503 and \"mqtt\":\"flapping\" while connected" health_is 503 flapping
check "/health: status degraded" jq -e '.status == "degraded"' "$T_DIR/health.json"
check "wbmb_mqtt_flapping is 1" bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"wbmb_mqtt_flapping\" {print \$2}')\" = 1 ]"
check "flapping logged at error level" log_has "error +MQTT connection is flapping: more than 2 losses within 12 s"
check "/health back to ok once the losses leave the 12 s window" wait_for 40 health_is 200 connected
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0

# ---- the broker's reason, from an MQTT 5 DISCONNECT ----------------------------
FAKE_PORT=$(free_port)
python3 "$WBMB_TEST_DATA/mqtt/disconnecting_broker.py" "$FAKE_PORT" 2 0.3 8E >>"$T_DIR/fake.log" 2>&1 &
T_PIDS+=("$!")
sed -i "s/^  port: .*/  port: $FAKE_PORT/" "$T_DIR/config.yaml"
wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FAKE_PORT" || fail "fake broker up"
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/config.yaml"
check "DISCONNECT: each loss logged with the broker's reason" wait_for 30 bash -c \
    "[ \$(grep -cE 'warning +MQTT connection lost: the broker sent DISCONNECT: Session taken over \(0x8E\); retrying in 1 s' '$T_DIR/bridge.log') -eq 2 ]"
check "DISCONNECT: connected for good the third time" wait_for 30 connects_are 3
check "DISCONNECT: losses counted" bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"wbmb_mqtt_disconnects_total\" {print \$2}')\" = 2 ]"
stop_bridge TERM
check "DISCONNECT: clean stop" test "$BRIDGE_RC" -eq 0
t_done
