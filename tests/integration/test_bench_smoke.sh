#!/usr/bin/env bash
# Smoke run of the end-to-end benchmark tools (bench/mqtt_load,
# bench/commit_wait) against the real bridge: a few thousand messages, plain
# and JSON, over 20 devices, every one a transition. Asserts only that
# nothing is lost and the run completes (no timing assertion: it must not
# flake on a loaded machine): applied == N, dropped == 0, N history rows
# committed, every device's stored value is its last sequence number.
source "$(dirname "$0")/lib.sh"

: "${WBMB_BUILD_DIR:?WBMB_BUILD_DIR must point at the build tree}"
LOAD=$WBMB_BUILD_DIR/bench/mqtt_load
COMMIT_WAIT=$WBMB_BUILD_DIR/bench/commit_wait
N=4000
K=20

start_broker
DB=$T_DIR/db/state.db
{
    cat <<YAML
mqtt:
  host: 127.0.0.1
  port: $MQTT_PORT
  client_id: wbmb-smoke-$$
persistence:
  db_path: $DB
  commit_interval_ms: 100
  history:
    enabled: true
http:
  listen: ""
bridge:
  device_id: smoke_bridge
devices:
YAML
    for ((i = 0; i < K; i++)); do
        if ((i % 2 == 0)); then
            printf '  - id: smoke_dev%d\n    state:\n      - {topic: smoke/dev%d/value, field: value, type: int}\n' "$i" "$i"
        else
            printf '  - id: smoke_dev%d\n    state:\n      - {topic: smoke/dev%d/json, type: json}\n' "$i" "$i"
        fi
    done
} >"$T_DIR/config.yaml"

start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
# Subscribed once the last device's meta (published after SUBSCRIBE) is retained.
check "bridge publishes its devices" wait_for 30 \
    test -n "$(retained_value /devices/smoke_dev$((K - 1))/meta)"

check "load generator sends $N messages (QoS 1)" \
    "$LOAD" -p "$MQTT_PORT" -n "$N" -k "$K" -q 1 -P smoke
check "all $N transitions committed" "$COMMIT_WAIT" "$DB" "$N" 120 20

stop_bridge TERM
check "bridge exits 0 on SIGTERM" test "$BRIDGE_RC" -eq 0
stats=$(grep -o 'stats: .*' "$T_DIR/bridge.log" | tail -n 1)
t_log "$stats"
check "applied == $N" grep -q "applied=$N " <<<"$stats"
check "nothing dropped or rejected" grep -q "rejected=0 .*dropped=0 " <<<"$stats"

values_ok() {
    local exp
    exp=$("$WBMB_BIN" -c "$T_DIR/config.yaml" state export) || return 1
    for ((i = 0; i < K; i++)); do
        local last=$((N / K + (i < N % K ? 1 : 0))) field=value
        ((i % 2 == 0)) || field=seq
        [ "$(jq -r ".\"device:smoke_dev$i\".$field" <<<"$exp")" = "$last" ] ||
            { t_log "smoke_dev$i: $field is not $last"; return 1; }
    done
}
check "every device holds its last sequence number" values_ok
check "one history row per transition" \
    test "$(sql "$DB" 'select count(*) from device_state_snapshots')" -eq "$N"
t_done
