#!/usr/bin/env bash
# crash.sh [ROUNDS] - kill -9 the bridge at random moments under load.
#
# A load generator (loadgen.py) publishes increasing sequence numbers to
# seq/dev0..seq/dev<N-1> (int field `seq`) the whole time. Each round starts
# the real bridge, lets it run for a random while (one round in four it is
# killed during start-up instead), then, right before the SIGKILL:
#   - reads /metrics (wbmb_store_committed_seq, applied count; reported), and
#   - reads every device's committed seq from the database with sqlite3
#     (a WAL reader sees exactly the committed transactions): the "floor".
# After the kill:
#   - PRAGMA integrity_check (sqlite3 -readonly, no checkpoint) must be ok;
#   - the state the bridge would restore (`state export`, offline CLI, the
#     same store code as the daemon) must hold, for every device, a seq >=
#     the floor of this round and >= the value restored in the round before
#     (never goes back).
# The last round stops the generator, publishes one final marker per device,
# waits until the bridge has applied every marker, sends SIGTERM: the exit
# code is 0 and the database holds exactly the marker for every device.
#
# Env: WBMB_CRASH_DEVICES (20), WBMB_CRASH_RATE (numbers/s/device, 25),
# WBMB_CRASH_COMMIT_MS (commit_interval_ms, 50). Prints "# SUMMARY crash ..."
# for scripts/reliability.sh.
source "$(dirname "$0")/../integration/lib.sh"

ROUNDS=${1:-10}
NDEV=${WBMB_CRASH_DEVICES:-20}
RATE=${WBMB_CRASH_RATE:-25}
COMMIT_MS=${WBMB_CRASH_COMMIT_MS:-50}
REL_DIR=$(cd "$(dirname "$0")" && pwd)

start_broker
HTTP_PORT=$(free_port)
CFG=$T_DIR/config.yaml
DB=$T_DIR/db/state.db
{
    cat <<YAML
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: wbmb-crash-$$, keepalive_s: 5}
persistence:
  db_path: $DB
  commit_interval_ms: $COMMIT_MS
  history: {enabled: true, max_rows_per_device: 500, max_age_days: 30}
http: {listen: "127.0.0.1:$HTTP_PORT"}
bridge: {device_id: crash_bridge}
devices:
YAML
    for ((i = 0; i < NDEV; i++)); do
        printf '  - id: dev%d\n    state:\n      - {topic: seq/dev%d, field: seq, type: int}\n' "$i" "$i"
    done
} >"$CFG"

python3 "$REL_DIR/loadgen.py" 127.0.0.1 "$MQTT_PORT" "$NDEV" "$RATE" "$T_DIR" &
LOADGEN_PID=$!
T_PIDS+=("$LOADGEN_PID")

metric() { # metric NAME_WITH_LABELS: prints the value, fails when unreachable
    curl -sf --max-time 2 "http://127.0.0.1:$HTTP_PORT/metrics" |
        awk -v m="$1" '$1 == m {print $2; found=1} END {exit !found}'
}
connected_count() { cat "$T_DIR/bridge.log" 2>/dev/null | grep -c 'MQTT connected' || true; }
# db_seqs: "dev<i> <seq>" lines of every stored device, read as a WAL reader.
db_seqs() {
    sqlite3 -readonly -batch -noheader "$DB" ".timeout 5000" \
        "select substr(key, 8), json_extract(value, '\$.seq') from state_store where key like 'device:%'" |
        tr '|' ' '
}
# restored_seqs: the same from the offline CLI (what a restart restores).
restored_seqs() {
    "$WBMB_BIN" -c "$CFG" state export 2>>"$T_DIR/cli.log" |
        jq -r 'to_entries[] | select(.key | startswith("device:")) | "\(.key[7:]) \(.value.seq)"'
}
applied() { metric 'wbmb_messages_total{outcome="applied"}'; }
applied_grows() { [ "$(applied)" -gt 0 ]; }
rand_ms() { echo $((RANDOM % ($2 - $1 + 1) + $1)); }

declare -A prev=() floor=() now=()
kills=0 early=0 integrity_bad=0 regressions=0 below_floor=0 rounds_ok=0
for ((round = 1; round <= ROUNDS; round++)); do
    before=$(connected_count)
    start_bridge "$CFG"
    kind=late
    if ((round % 4 == 0)); then
        # The experiment: a kill somewhere in start-up (restore, schema
        # check, first connect) - no waiting for anything.
        kind=early
        early=$((early + 1))
        sleep "0.$(printf '%03d' "$(rand_ms 0 999)")"
    else
        if ! wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -gt $before ]"; then
            fail "round $round: bridge did not connect"
            stop_bridge KILL
            break
        fi
        if ! wait_for 30 applied_grows; then
            fail "round $round: bridge applies nothing"
            stop_bridge KILL
            break
        fi
        sleep "$(rand_ms 0 2).$(printf '%03d' "$(rand_ms 0 999)")" # the experiment: a random moment
    fi
    committed=$(metric wbmb_store_committed_seq 2>/dev/null || echo "?")
    applied=$(applied 2>/dev/null || echo "?")
    floor=()
    if [ -f "$DB" ]; then
        while read -r dev seq; do floor[$dev]=$seq; done < <(db_seqs 2>/dev/null || true)
    fi
    kill -KILL "$BRIDGE_PID"
    wait "$BRIDGE_PID" 2>/dev/null || true # no "Killed" line per round
    kills=$((kills + 1))

    ic=$(sql "$DB" 'pragma integrity_check' 2>&1 || true)
    if [ "$ic" != ok ]; then
        integrity_bad=$((integrity_bad + 1))
        fail "round $round: integrity_check: $ic"
        cp "$DB" "$T_DIR/bad-round-$round.db" 2>/dev/null || true
        continue
    fi
    now=()
    while read -r dev seq; do now[$dev]=$seq; done < <(restored_seqs)
    bad=""
    for dev in "${!floor[@]}"; do
        if [ -z "${now[$dev]:-}" ] || [ "${now[$dev]}" -lt "${floor[$dev]}" ]; then
            bad+=" $dev:committed=${floor[$dev]},restored=${now[$dev]:-none}"
            below_floor=$((below_floor + 1))
        fi
    done
    for dev in "${!prev[@]}"; do
        if [ -z "${now[$dev]:-}" ] || [ "${now[$dev]}" -lt "${prev[$dev]}" ]; then
            bad+=" $dev:previous=${prev[$dev]},restored=${now[$dev]:-none}"
            regressions=$((regressions + 1))
        fi
    done
    if [ -n "$bad" ]; then
        fail "round $round ($kind kill): restored state went back:$bad"
    else
        rounds_ok=$((rounds_ok + 1))
        ok "round $round ($kind kill): integrity ok, ${#now[@]} devices restored >= committed (${#floor[@]} in the snapshot), none went back; committed_seq=$committed applied=$applied"
    fi
    prev=()
    for dev in "${!now[@]}"; do prev[$dev]=${now[$dev]}; done
done

# Final round: stop the load, publish one marker per device, SIGTERM.
before=$(connected_count)
start_bridge "$CFG"
check "final: bridge connects" \
    wait_for 60 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -gt $before ]"
kill -TERM "$LOADGEN_PID"
wait "$LOADGEN_PID" || true
last=$(cat "$T_DIR/last")
marker=$((last + 1))
t_log "generator stopped at $last; final marker $marker"
for ((i = 0; i < NDEV; i++)); do
    pub -t "seq/dev$i" -m "$marker"
done
all_applied() {
    [ "$(curl -sf --max-time 2 "http://127.0.0.1:$HTTP_PORT/devices" |
        jq "[.[] | select(.state.seq == $marker)] | length")" = "$NDEV" ]
}
check "final: bridge applied the marker of all $NDEV devices" wait_for 60 all_applied
stop_bridge TERM
check "final: SIGTERM exit code 0 (got $BRIDGE_RC)" test "$BRIDGE_RC" -eq 0
check "final: integrity_check ok" test "$(sql "$DB" 'pragma integrity_check')" = ok
lost_final=0
while read -r dev seq; do
    [ "$seq" = "$marker" ] || { lost_final=$((lost_final + 1)); t_log "$dev stored $seq, expected $marker"; }
done < <(db_seqs)
stored=$(db_seqs | wc -l)
check "final: every device stored the marker ($stored devices, $lost_final wrong)" \
    test "$lost_final" -eq 0 -a "$stored" -eq "$NDEV"
check "no ASan/UBSan report in the bridge log" bash -c "! grep -qE 'AddressSanitizer|runtime error:' '$T_DIR/bridge.log'"
echo "# SUMMARY crash rounds=$ROUNDS kills=$kills early_kills=$early integrity_failures=$integrity_bad" \
    "below_committed=$below_floor regressions=$regressions final_lost=$lost_final ok_rounds=$rounds_ok"
t_done
