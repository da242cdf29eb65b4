#!/usr/bin/env bash
# test_lock_budget.sh - the hot path's lock budget (README, "Design"): a
# message applied in place on paho's thread takes at most two mutexes of
# ours (the core's and the store's) when no SSE client listens and the
# outbox is idle. The debug build counts them (lockstat.h) and /metrics
# shows wbmb_debug_inplace_{messages_total,locks_total,locks_max}. The
# messages go one at a time (each one applied before the next is sent), so
# the queue is empty and the outbox idle for every one of them; each is a
# transition that is stored and mirrored. Before issue 16 the same path
# took about eight (the queue's, the outbox's twice, mqttc's, the SSE lock).
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
cat >"$T_DIR/config.yaml" <<YAML
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: wbmb-test-$$, keepalive_s: 5}
persistence: {db_path: $T_DIR/db/state.db, commit_interval_ms: 50}
http: {listen: "127.0.0.1:$HTTP_PORT"}
bridge: {device_id: test_bridge, mirror_min_interval_ms: 0}
devices:
  - id: counter
    name: Counter
    state:
      - {topic: test/counter, field: value, type: int}
YAML
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
check "HTTP up" wait_for 20 curl -sf "$BASE/health"
metric() { curl -sf "$BASE/metrics" | sed -n "s/^$1 //p"; }
check "the debug build counts the locks" bash -c "curl -sf $BASE/metrics | grep -q '^wbmb_debug_inplace_locks_max '"
has_retained() { [ -n "$(retained_value "$1")" ]; }
check "the republish after the connect is over" wait_for 20 has_retained /devices/counter/meta

N=60
m0=$(metric wbmb_debug_inplace_messages_total)
l0=$(metric wbmb_debug_inplace_locks_total)
applied_is() { [ "$(metric wbmb_transitions_total)" -ge "$1" ]; }
for i in $(seq 1 $N); do
    pub -t test/counter -m "$i"
    wait_for 20 applied_is "$i" || fail "message $i applied"
done
check "the last value is mirrored" wait_for 20 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/counter/controls/value -C 1 -W 5)\" = $N ]"
m1=$(metric wbmb_debug_inplace_messages_total)
l1=$(metric wbmb_debug_inplace_locks_total)
max=$(metric wbmb_debug_inplace_locks_max)
t_log "in place: $((m1 - m0)) messages, $((l1 - l0)) locks, at most $max for one"
check "the $N messages were applied in place" [ "$((m1 - m0))" -ge "$N" ]
check "at most two locks for any message applied in place" [ "$max" -le 2 ]
check "two locks per message over the run" [ "$((l1 - l0))" -le "$((2 * (m1 - m0)))" ]
t_done
