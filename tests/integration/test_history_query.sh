#!/usr/bin/env bash
# GET /state-history/{id} with its time parameters (issue 21 point 2) on the
# real binary: 12 transitions of a sensor through mosquitto_pub, then with
# curl the contract's plain answer, order=asc, from/to as ISO-8601 (Z and an
# offset) and as epoch ms, fields=, max_points= buckets, and every 400.
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
cat >"$T_DIR/config.yaml" <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-test-$$
persistence:
  db_path: $T_DIR/db/state.db
  commit_interval_ms: 50
  history:
    enabled: true
    max_rows_per_device: 1000
    max_age_days: 30
http:
  listen: 127.0.0.1:$HTTP_PORT
bridge:
  device_id: test_bridge
devices:
  - id: sensor
    name: Sensor
    type: sensor
    state:
      - topic: z2m/sensor
        type: json
        fields: {temp: temperature, mode: mode}
YAML
check "config valid" "$WBMB_BIN" -c "$T_DIR/config.yaml" --check-config
start_bridge "$T_DIR/config.yaml"
wait_for 20 curl -sf "$BASE/health" || fail "the bridge did not answer"

# get PATH: the status code on stdout, the body in $T_DIR/body.
get() { curl -s -m 10 -o "$T_DIR/body" -w '%{http_code}' "$BASE$1"; }
body() { jq -c "$1" "$T_DIR/body"; }
body_r() { jq -r "$1" "$T_DIR/body"; }
rows_are() { [ "$(get "/state-history/sensor?limit=1000")" = 200 ] && [ "$(body length)" = "$1" ]; }

# send_until I: publishes transition I and checks that it is row I. Sent
# again on each poll until it is: a message published before the bridge's
# subscription is in place is lost, and a repeat changes nothing (the same
# state is no transition). Each waits for the one before, so every row has
# its own millisecond.
send_until() {
    pub -t z2m/sensor -m "{\"temperature\": $((20 + $1)), \"mode\": \"m$(($1 % 2))\"}"
    rows_are "$1"
}
for i in $(seq 1 12); do
    wait_for 20 send_until "$i" || fail "transition $i not in the history"
done
check "12 rows" rows_are 12

# The contract's answer, unchanged: newest first, ts and state only.
[ "$(get "/state-history/sensor?limit=3")" = 200 ] || fail "plain query"
check "plain: 3 rows newest first" [ "$(body '[.[].state.temp]')" = "[32,31,30]" ]
check "plain: keys ts and state only" [ "$(body '[.[] | keys] | unique')" = '[["state","ts"]]' ]
[ "$(get "/state-history/sensor?limit=2&order=asc")" = 200 ] || fail "asc"
check "order=asc: oldest first" [ "$(body '[.[].state.temp]')" = "[21,22]" ]
[ "$(get "/state-history/sensor?limit=2&order=desc")" = 200 ] || fail "desc"
check "order=desc" [ "$(body '[.[].state.temp]')" = "[32,31]" ]

# The times of rows 3 and 6 (temps 23 and 26), as ISO-8601 and epoch ms.
get "/state-history/sensor?limit=1000&order=asc" >/dev/null
T3=$(body_r '.[2].ts')
T6=$(body_r '.[5].ts')
T3_MS=$(python3 -c "import datetime,sys; print(int(datetime.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00')).timestamp()*1000))" "$T3")
T6_MS=$(python3 -c "import datetime,sys; print(int(datetime.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00')).timestamp()*1000))" "$T6")
# The same instant as T3 in +01:00 ('+' escaped as %2B).
T3_OFF=$(python3 -c "import datetime,sys; t=datetime.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00')); print(t.astimezone(datetime.timezone(datetime.timedelta(hours=1))).isoformat(timespec='milliseconds').replace('+','%2B'))" "$T3")

[ "$(get "/state-history/sensor?from=$T3&to=$T6")" = 200 ] || fail "from/to ISO"
check "from/to ISO: rows 3..6 newest first" [ "$(body '[.[].state.temp]')" = "[26,25,24,23]" ]
[ "$(get "/state-history/sensor?from=$T3_MS&to=$T6_MS&order=asc")" = 200 ] || fail "from/to ms"
check "from/to epoch ms, asc" [ "$(body '[.[].state.temp]')" = "[23,24,25,26]" ]
[ "$(get "/state-history/sensor?from=$T3_OFF&to=$T6&limit=2")" = 200 ] || fail "offset"
check "from with an offset, limit" [ "$(body '[.[].state.temp]')" = "[26,25]" ]
[ "$(get "/state-history/sensor?from=$T6_MS")" = 200 ] || fail "from only"
check "from only: up to now" [ "$(body length)" = 7 ]
[ "$(get "/state-history/sensor?to=$T3_MS")" = 200 ] || fail "to only"
check "to only" [ "$(body '[.[].state.temp]')" = "[23,22,21]" ]
[ "$(get "/state-history/sensor?fields=mode&limit=1")" = 200 ] || fail "fields"
check "fields=mode" [ "$(body '.[0].state')" = '{"mode":"m0"}' ]
[ "$(get "/state-history/sensor?fields=mode%2Ctemp&limit=1")" = 200 ] || fail "fields escaped"
check "fields=mode%2Ctemp (encodeURIComponent)" [ "$(body '.[0].state | keys')" = '["mode","temp"]' ]
T3_PLUS=$(printf '%s' "$T3_OFF" | sed 's/%2B/+/')
[ "$(get "/state-history/sensor?from=$T3_PLUS&to=$T6")" = 200 ] || fail "a literal +"
check "from with a literal + offset" [ "$(body length)" = 4 ]

# Buckets: all 12 rows in [T1, T12] in at most 3 buckets.
get "/state-history/sensor?limit=1000&order=asc" >/dev/null
T1=$(body_r '.[0].ts')
T12=$(body_r '.[11].ts')
[ "$(get "/state-history/sensor?from=$T1&to=$T12&max_points=3")" = 200 ] || fail "max_points"
check "max_points=3: at most 3 buckets" [ "$(body length)" -le 3 ]
check "buckets hold every row" [ "$(body '[.[].n] | add')" = 12 ]
check "buckets newest first, ts of their last row" [ "$(body_r '.[0].ts')" = "$T12" ]
check "bucket keys" [ "$(body '[.[] | keys] | unique')" = '[["n","state","stats","ts"]]' ]
check "numeric stats" [ "$(body '.[0].stats.temp | (.min <= .mean and .mean <= .max and .max == 32)')" = true ]
check "a string field: its last value" [ "$(body_r '.[0].state.mode')" = m0 ]
[ "$(get "/state-history/sensor?max_points=1&order=asc&fields=temp")" = 200 ] || fail "one bucket"
check "one bucket from the first row to now" [ "$(body '.[0] | [.n, .stats.temp.min, .stats.temp.max, .state.temp]')" = "[12,21,32,26.5]" ]

# Every bad parameter: 400 with {"error"}.
for q in "from=yesterday" "to=2026-12-03T06:00:00" "from=$T6&to=$T3" "order=up" \
    "max_points=0" "max_points=10001" "max_points=abc" "fields=temp,,mode" \
    "from=2026-02-30T00:00:00Z" "limit=0" "from=4102444800000&max_points=5"; do
    code=$(get "/state-history/sensor?$q")
    check "400 for $q" [ "$code" = 400 ]
    check "an error message for $q" [ "$(body 'has("error")')" = true ]
done
check "404 for an unknown device" [ "$(get "/state-history/nodevice?from=$T3")" = 404 ]

stop_bridge
check "clean stop" [ "$BRIDGE_RC" = 0 ]
t_done
