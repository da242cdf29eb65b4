#!/usr/bin/env bash
# The HTTP API of CONTRACT §6 on the real binary: every endpoint with curl,
# the SSE stream (init, then a state event after a mosquitto_pub), an action
# through HTTP ending in a command_logs row, the error codes (400/401/404/
# 405/413), a scenario switch, and a clean SIGTERM with an SSE client
# connected.
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
TOKEN="tok-$RANDOM-$RANDOM"
printf '%s\n' "$TOKEN" >"$T_DIR/token"
http_config() {
    cat >"$1" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-test-$$
  keepalive_s: 5
persistence:
  db_path: $T_DIR/db/state.db
  commit_interval_ms: 50
  history:
    enabled: true
    max_rows_per_device: 1000
    max_age_days: 30
http:
  listen: 127.0.0.1:$HTTP_PORT
  token_file: $T_DIR/token
bridge:
  device_id: test_bridge
devices:
  - id: tv
    name: Test TV
    type: tv
    state:
      - topic: /devices/relay/controls/K1
        field: power
        type: bool
    actions:
      power_on:
        topic: /devices/relay/controls/K1/on
        payload: "1"
        set: {power: true}
      set_volume:
        topic: /devices/tv/controls/volume/on
        payload: "{level}"
        params:
          level: {type: int, min: 0, max: 100, required: true}
        set: {volume: "{level}"}
  - id: plug
    name: Plug
    type: plug
    state:
      - topic: z2m/plug
        type: json
        fields: {power_w: power, state: state}
    availability:
      topic: z2m/plug/availability
      online: online
      offline: offline
scenarios:
  - id: movie
    name: Movie night
    devices: [tv]
    startup:
      - {device: tv, action: power_on}
YAML
}
http_config "$T_DIR/config.yaml"
check "config valid" "$WBMB_BIN" -c "$T_DIR/config.yaml" --check-config
start_bridge "$T_DIR/config.yaml"

# req METHOD PATH [CURL ARGS...]: status code on stdout; body in $T_DIR/body,
# headers in $T_DIR/head. --path-as-is keeps "/../" tricks as typed.
req() {
    local m=$1 p=$2
    shift 2
    curl -s -m 10 --path-as-is -X "$m" -o "$T_DIR/body" -D "$T_DIR/head" -w '%{http_code}' "$@" "$BASE$p"
}
auth=(-H "Authorization: Bearer $TOKEN")
body() { cat "$T_DIR/body"; }
jb() { jq -e "$1" "$T_DIR/body" >/dev/null; }
is() { [ "$1" = "$2" ] || { echo "# expected $2, got $1: $(head -c 300 "$T_DIR/body")"; return 1; }; }
is_error() { is "$1" "$2" && jq -e 'type == "object" and (.error | type == "string") and length == 1' "$T_DIR/body" >/dev/null &&
    grep -qi '^content-type: application/json' "$T_DIR/head"; }

check "HTTP answers" wait_for 20 curl -sf "$BASE/health"
check "MQTT connected" wait_for 30 log_has "MQTT connected"

# ---- GET endpoints -----------------------------------------------------------
check "health shape" wait_for 10 bash -c "curl -sf $BASE/health | jq -e '.status == \"ok\" and .mqtt == \"connected\" and .db == \"ok\" and (.uptime_s | type == \"number\")'"
check "health is JSON" bash -c "[ \$(curl -s -o /dev/null -w '%{content_type}' $BASE/health) = application/json ]"
check "GET /metrics 200" is "$(req GET /metrics)" 200
check "metrics has the HTTP counters" bash -c "grep -q '^wbmb_http_requests_total ' $T_DIR/body && grep -q '^wbmb_sse_clients ' $T_DIR/body && grep -q 'wbmb_http_responses_total{class=\"4xx\"}' $T_DIR/body && grep -q '^wbmb_sse_dropped_total ' $T_DIR/body"
check "metrics has the store's sync and checkpoint figures" bash -c "grep -q '^wbmb_store_sync_latency_max_seconds ' $T_DIR/body && grep -q '^wbmb_store_durable_lag_max_seconds ' $T_DIR/body && grep -q '^wbmb_store_checkpoint_latency_seconds_count ' $T_DIR/body && grep -q '^wbmb_store_checkpoint_latency_max_seconds ' $T_DIR/body && grep -q '^wbmb_store_checkpoint_failures_total 0$' $T_DIR/body && grep -q '^wbmb_mqtt_publish_coalesced_total ' $T_DIR/body"
check "GET /devices 200" is "$(req GET /devices)" 200
check "devices list shape" jb 'map(.id) | sort == ["plug", "tv"]'
check "device entry fields" jb '.[] | select(.id == "tv") | .name == "Test TV" and .type == "tv" and has("online") and (.state | type == "object")'
check "GET /devices/tv 200" is "$(req GET /devices/tv)" 200
check "device has its actions" jb '[.actions[].name] | sort == ["power_on", "set_volume"]'
check "action params described" jb '.actions[] | select(.name == "set_volume") | .params.level.type == "int" and .params.level.required == true'
check "GET /devices/nope 404" is_error "$(req GET /devices/nope)" 404
check "GET /devices/nope/state 404" is_error "$(req GET /devices/nope/state)" 404
check "GET /scenarios" is "$(req GET /scenarios)" 200
check "scenarios shape" jb '.[0].id == "movie" and .[0].name == "Movie night" and .[0].devices == ["tv"]'
check "GET / is the page" bash -c "curl -sf -D $T_DIR/phead $BASE/ | grep -q '<title>wb-mqtt-bridge</title>' && grep -qi '^content-type: text/html' $T_DIR/phead"

# ---- SSE: init, then a state event after a publication -------------------------
curl -s -N "$BASE/events" >"$T_DIR/sse.txt" 2>/dev/null &
SSE_PID=$!
T_PIDS+=("$SSE_PID")
check "SSE init event" wait_for 10 grep -q '^event: init' "$T_DIR/sse.txt"
check "SSE init data has devices" wait_for 5 bash -c "grep -A1 '^event: init' $T_DIR/sse.txt | sed -n 's/^data: //p' | jq -e '.devices and .scenario'"
pub -t /devices/relay/controls/K1 -m 1
check "SSE state event after mosquitto_pub" wait_for 10 bash -c "grep -A1 '^event: state' $T_DIR/sse.txt | sed -n 's/^data: //p' | jq -se 'map(select(.device_id == \"tv\" and .state.power == true)) | length >= 1'"
check "GET /devices/tv/state" bash -c "[ \"\$(curl -sf $BASE/devices/tv/state | jq -c .power)\" = true ]"
pub -t z2m/plug/availability -m online
check "SSE connection event" wait_for 10 bash -c "grep -A1 '^event: connection' $T_DIR/sse.txt | sed -n 's/^data: //p' | jq -se 'map(select(.device_id == \"plug\" and .online == true)) | length >= 1'"
check "connection history" wait_for 10 bash -c "curl -sf '$BASE/device-connection-history/plug?limit=5' | jq -e '.[0].event == \"online\" and (.[0].ts | type == \"string\")'"

# ---- an action through HTTP ---------------------------------------------------
code=$(req POST /devices/tv/action "${auth[@]}" -H 'Content-Type: application/json' -d '{"action":"set_volume","params":{"level":30}}')
check "POST action 200" is "$code" 200
check "action answer shape" jb '(.command_id | test("^[0-9a-f-]{36}$")) and .status == "sent" and (.state.volume | tostring) == "30"'
CMD_ID=$(jq -r .command_id "$T_DIR/body")
check "command log row" wait_for 10 bash -c "curl -sf '$BASE/command-logs?device_id=tv&limit=5' | jq -e '.[0].command_id == \"$CMD_ID\" and .[0].action == \"set_volume\" and .[0].params.level == 30 and .[0].source == \"http\" and .[0].status == \"sent\" and (.[0] | has(\"created_at\"))'"
check "command log status filter" bash -c "curl -sf '$BASE/command-logs?status=failed' | jq -e 'all(.status == \"failed\")'"
check "state history newest first" wait_for 10 bash -c "curl -sf '$BASE/state-history/tv?limit=10' | jq -e '(.[0].state.volume | tostring) == \"30\" and (.[0].ts | type == \"string\")'"
check "state history honours limit" bash -c "[ \$(curl -sf '$BASE/state-history/tv?limit=1' | jq length) = 1 ]"
check "SSE saw the action's state" wait_for 10 bash -c "grep -A1 '^event: state' $T_DIR/sse.txt | sed -n 's/^data: //p' | jq -se 'map(select(.device_id == \"tv\" and (.state.volume | tostring) == \"30\")) | length >= 1'"

# ---- errors ----------------------------------------------------------------------
check "400 malformed JSON" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '{"action":')" 400
check "400 not an object" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '["power_on"]')" 400
check "400 trailing garbage" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '{"action":"power_on"} x')" 400
check "400 missing action" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '{}')" 400
check "400 unknown action" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '{"action":"explode"}')" 400
check "400 param out of range" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '{"action":"set_volume","params":{"level":101}}')" 400
check "400 missing required param" is_error "$(req POST /devices/tv/action "${auth[@]}" -d '{"action":"set_volume"}')" 400
check "404 action on unknown device" is_error "$(req POST /devices/nope/action "${auth[@]}" -d '{"action":"power_on"}')" 404
check "404 unknown path" is_error "$(req GET /nope)" 404
check "404 dot-dot path" is_error "$(req GET /devices/../health)" 404
check "404 encoded dot-dot" is_error "$(req GET /devices/%2e%2e/state)" 404
check "405 GET on a POST route" is_error "$(req GET /devices/tv/action)" 405
check "405 has Allow" grep -qi '^allow: POST' "$T_DIR/head"
check "405 POST on a GET route" is_error "$(req POST /devices "${auth[@]}" -d '{}')" 405
head -c 100000 /dev/zero | tr '\0' ' ' >"$T_DIR/big.json"
check "413 body over 64 KiB" is_error "$(req POST /devices/tv/action "${auth[@]}" --data-binary @"$T_DIR/big.json")" 413
check "401 without token" is_error "$(req POST /devices/tv/action -d '{"action":"power_on"}')" 401
check "401 wrong token" is_error "$(req POST /scenario/switch -H 'Authorization: Bearer nope' -d '{"id":"movie"}')" 401
check "401 does not echo the token" bash -c "! grep -q '$TOKEN' $T_DIR/body $T_DIR/bridge.log"
check "400 bad limit" is_error "$(req GET '/state-history/tv?limit=0')" 400
check "400 limit too big" is_error "$(req GET '/command-logs?limit=1001')" 400
check "400 bad status filter" is_error "$(req GET '/command-logs?status=weird')" 400
check "404 unknown scenario" is_error "$(req POST /scenario/switch "${auth[@]}" -d '{"id":"nope"}')" 404

# ---- scenario switch -------------------------------------------------------------
code=$(req POST /scenario/switch "${auth[@]}" -d '{"id":"movie"}')
check "switch 200" is "$code" 200
check "switch answer shape" jb '.success == true and .scenario_id == "movie" and (.shared_devices | type == "array") and (.failed_steps | type == "array")'
check "scenario state active" wait_for 10 bash -c "curl -sf $BASE/scenario/state | jq -e '.scenario_id == \"movie\" and .status == \"active\"'"
check "SSE scenario event" wait_for 10 grep -q '^event: scenario' "$T_DIR/sse.txt"
check "startup step ran (power_on)" wait_for 10 bash -c "curl -sf '$BASE/command-logs?device_id=tv&limit=5' | jq -e 'map(select(.action == \"power_on\" and .source == \"scenario\")) | length >= 1'"
code=$(req POST /scenario/shutdown "${auth[@]}")
check "shutdown 200" is "$code" 200
check "shutdown answer shape" jb 'has("success") and has("failed_steps")'
check "scenario off after shutdown" wait_for 10 bash -c "curl -sf $BASE/scenario/state | jq -e '.status == \"off\" or .scenario_id == null'"

# ---- a clean stop with an SSE client still connected ---------------------------------
check "SSE client still connected" kill -0 "$SSE_PID"
t0=$(date +%s)
stop_bridge TERM
check "SIGTERM exits 0 with an SSE client connected" test "$BRIDGE_RC" -eq 0
check "stopped within 5 s" test $(($(date +%s) - t0)) -le 5
check "SSE stream ended" wait_for 5 bash -c "! kill -0 $SSE_PID"
t_done
