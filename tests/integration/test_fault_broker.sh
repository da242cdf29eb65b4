#!/usr/bin/env bash
# The broker is killed (SIGKILL) and restarted N times (default 10, env
# WBMB_BROKER_ROUNDS) while tests/reliability/loadgen.py publishes per-device
# sequence numbers. Each time the bridge must notice, reconnect, resubscribe
# (keeps applying), and republish its retained topics on the fresh broker
# (which has none: persistence false). Reconnect times (broker answering ->
# "MQTT connected" seen in the log) are printed as "# reconnect N: X ms";
# they are reported, not asserted. At the end the load stops, one marker per
# device is published; all must be applied, and stored by a clean SIGTERM.
source "$(dirname "$0")/lib.sh"

ROUNDS=${WBMB_BROKER_ROUNDS:-10}
NDEV=10
HTTP_PORT=$(free_port)
start_broker
DB=$T_DIR/db/state.db
{
    cat <<YAML
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: wbmb-brk-$$, keepalive_s: 5}
persistence: {db_path: $DB, commit_interval_ms: 50}
http: {listen: "127.0.0.1:$HTTP_PORT"}
bridge: {device_id: brk_bridge}
devices:
YAML
    for ((i = 0; i < NDEV; i++)); do
        printf '  - id: dev%d\n    state:\n      - {topic: seq/dev%d, field: seq, type: int}\n' "$i" "$i"
    done
} >"$T_DIR/config.yaml"

applied() {
    curl -sf --max-time 2 "http://127.0.0.1:$HTTP_PORT/metrics" |
        awk '$1 == "wbmb_messages_total{outcome=\"applied\"}" {print $2}'
}
count_of() { grep -c "$1" "$T_DIR/bridge.log" || true; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
mirror_value() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$1" -C 1 -W 2 --retained-only 2>/dev/null; }
is_number() { [[ $1 =~ ^[0-9]+$ ]]; }

start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
python3 "$WBMB_SOURCE_DIR/tests/reliability/loadgen.py" 127.0.0.1 "$MQTT_PORT" "$NDEV" 25 "$T_DIR" &
LOADGEN_PID=$!
T_PIDS+=("$LOADGEN_PID")
check "load is applied" wait_for 30 bash -c "[ \"\$(curl -sf http://127.0.0.1:$HTTP_PORT/metrics | grep -F 'outcome=\"applied\"' | cut -d' ' -f2)\" -gt 0 ]"

reconnects=0 times=""
for ((round = 1; round <= ROUNDS; round++)); do
    lost_before=$(count_of 'MQTT connection lost')
    conn_before=$(count_of 'MQTT connected')
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null || true
    if ! wait_for 30 bash -c "[ \$(grep -c 'MQTT connection lost' '$T_DIR/bridge.log') -gt $lost_before ]"; then
        fail "round $round: connection loss not noticed"
        break
    fi
    start_broker "$MQTT_PORT"
    t0=$(now_ms)
    if ! wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -gt $conn_before ]"; then
        fail "round $round: bridge did not reconnect"
        break
    fi
    ms=$(($(now_ms) - t0))
    reconnects=$((reconnects + 1))
    times+=" $ms"
    echo "# reconnect $round: $ms ms"
    a0=$(applied)
    ok_round=1
    wait_for 30 bash -c "[ \"\$(curl -sf http://127.0.0.1:$HTTP_PORT/metrics | grep -F 'outcome=\"applied\"' | cut -d' ' -f2)\" -gt $a0 ]" ||
        { ok_round=0; t_log "round $round: nothing applied after the reconnect"; }
    v=$(mirror_value /devices/dev3/controls/seq || true)
    is_number "$v" || { ok_round=0; t_log "round $round: retained /devices/dev3/controls/seq is '$v'"; }
    meta=$(mirror_value /devices/brk_bridge/meta || true)
    [ -n "$meta" ] || { ok_round=0; t_log "round $round: bridge meta not republished"; }
    check "round $round: reconnected in $ms ms, resubscribed (applied grows past $a0), retained state republished (dev3 seq=$v)" \
        test "$ok_round" = 1
    check "round $round: bridge still running" kill -0 "$BRIDGE_PID"
done

kill -TERM "$LOADGEN_PID"
wait "$LOADGEN_PID" || true
marker=$(($(cat "$T_DIR/last") + 1))
for ((i = 0; i < NDEV; i++)); do pub -t "seq/dev$i" -m "$marker"; done
all_applied() {
    [ "$(curl -sf --max-time 2 "http://127.0.0.1:$HTTP_PORT/devices" |
        jq "[.[] | select(.state.seq == $marker)] | length")" = "$NDEV" ]
}
check "every device applied the final marker $marker" wait_for 60 all_applied
stop_bridge TERM
check "SIGTERM exit code 0 (got $BRIDGE_RC)" test "$BRIDGE_RC" -eq 0
stored=$(sql "$DB" "select count(*) from state_store where key like 'device:dev%' and json_extract(value, '\$.seq') = $marker")
check "every device stored the final marker ($stored of $NDEV)" test "$stored" -eq "$NDEV"
check "no ASan/UBSan report" bash -c "! grep -qE 'AddressSanitizer|runtime error:' '$T_DIR/bridge.log'"
echo "# SUMMARY fault-broker kills=$ROUNDS reconnects=$reconnects lost=$((NDEV - stored)) reconnect_ms=${times# }"
t_done
