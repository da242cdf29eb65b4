#!/usr/bin/env bash
# test_valgrind.sh - the daemon under valgrind memcheck: zero errors and zero
# definite leaks over a smoke run (MQTT state messages good and bad, HTTP
# GETs, an action through HTTP, through MQTT and through Home Assistant's
# command topic, its birth message, a scenario switch and its shutdown,
# SIGTERM). valgrind and ASan do not mix, so this builds its own
# non-sanitizer Debug binary in build-valgrind/ (only the daemon target).
# Suppressions (tests/valgrind.supp) cover library internals only.
source "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || { echo "not ok - valgrind missing (scripts/deps.sh installs it)"; exit 1; }
VG_BUILD="$WBMB_SOURCE_DIR/build-valgrind"
if [ ! -f "$VG_BUILD/CMakeCache.txt" ]; then
    cmake -S "$WBMB_SOURCE_DIR" -B "$VG_BUILD" -DCMAKE_BUILD_TYPE=Debug -DWITH_TESTS=OFF \
        -DWITH_ASAN=OFF -DWITH_UBSAN=OFF >"$T_DIR/cmake.log" 2>&1 ||
        { cat "$T_DIR/cmake.log"; exit 1; }
fi
cmake --build "$VG_BUILD" -j2 --target wb-mqtt-bridge >"$T_DIR/build.log" 2>&1 ||
    { tail -n 40 "$T_DIR/build.log"; exit 1; }
ok "non-sanitizer build in build-valgrind/"
VG_BIN="$VG_BUILD/wb-mqtt-bridge"

start_broker
HTTP_PORT=$(free_port)
HTTP_LISTEN="127.0.0.1:$HTTP_PORT" scenario_config "$T_DIR/config.yaml"
# The Home Assistant sink and its presence connection run under valgrind too.
printf 'homeassistant: {enabled: true, republish_delay_ms: 0}\n' >>"$T_DIR/config.yaml"
BASE="http://127.0.0.1:$HTTP_PORT"

# --fair-sched=yes: valgrind runs one thread at a time, and its default lock
# is unfair; with MQTT 5 it starved paho's threads for seconds at a time
# (a scenario step's PUBACK came 5 s late, mosquitto dropped the client for
# its keepalive). Natively the same run shows no stall and no busy thread.
valgrind --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-origins=yes --num-callers=30 \
    --suppressions="$WBMB_SOURCE_DIR/tests/valgrind.supp" --log-file="$T_DIR/valgrind.log" \
    "$VG_BIN" -c "$T_DIR/config.yaml" --log-level debug >>"$T_DIR/bridge.log" 2>&1 &
BRIDGE_PID=$!
T_PIDS+=("$BRIDGE_PID")

check "bridge connects under valgrind" wait_for 120 log_has "MQTT connected"
check "HTTP answers under valgrind" wait_for 60 curl -sf -m 10 "$BASE/health"
# "MQTT connected" is logged before the SUBSCRIBE goes out, and under
# valgrind the SUBACK can come well after it: a message published in between
# reaches no subscription. Published again on every poll until it lands.
tv_on_applied() {
    pub -t st/tv/power -m 1
    curl -sf -m 10 "$BASE/devices/tv/state" | jq -e '.power == true' >/dev/null
}
check "state applied" wait_for 60 tv_on_applied
pub -t st/amp/power -m off
pub -t st/tv/power -m maybe
pub -t st/amp/power -m '{"not": "a bool"}'
check "the amplifier's state applied too" wait_for 60 bash -c "curl -sf -m 10 $BASE/devices/amp/state | jq -e '.power == false'"
for p in /devices /devices/tv /scenarios /scenario/state /metrics '/state-history/tv?limit=5' \
    '/command-logs?limit=5' '/device-connection-history/tv?limit=5' / /nope /devices/../health; do
    curl -s -m 20 -o /dev/null "$BASE$p" || true
done
ok "GET endpoints called"
check "action through HTTP" bash -c "curl -sf -m 20 -X POST $BASE/devices/dimmer/action \
    -d '{\"action\":\"set_level\",\"params\":{\"level\":40,\"who\":\"vg \\\"q\\\"\"}}' | jq -e '.status == \"sent\"'"
check "bad action refused" bash -c "[ \$(curl -s -m 20 -o /dev/null -w '%{http_code}' -X POST $BASE/devices/dimmer/action -d '{\"action\":\"set_level\",\"params\":{\"level\":400}}') = 400 ]"
pub -t /devices/amp/controls/set_input/on -m hdmi2
check "action through MQTT applied" wait_for 60 bash -c "curl -sf -m 10 $BASE/devices/amp/state | jq -e '.input == \"hdmi2\"'"
pub -t test_bridge/amp/set_input/set -m hdmi1
check "action through Home Assistant's command topic applied" wait_for 60 bash -c "curl -sf -m 10 $BASE/devices/amp/state | jq -e '.input == \"hdmi1\"'"
pub -t homeassistant/status -m online
check "Home Assistant's birth: announced again" wait_for 60 log_has "Home Assistant is online"
check "scenario switch" bash -c "curl -sf -m 60 -X POST $BASE/scenario/switch -d '{\"id\":\"movie\"}' | jq -e '.success == true'"
pub -t /devices/test_bridge/controls/scenario/on -m music
check "scenario switch over MQTT" wait_for 60 bash -c "curl -sf -m 10 $BASE/scenario/state | jq -e '.scenario_id == \"music\" and .status == \"active\"'"
check "scenario shutdown" bash -c "curl -sf -m 60 -X POST $BASE/scenario/shutdown | jq -e 'has(\"success\")'"
curl -s -m 5 -N "$BASE/events" >/dev/null 2>&1 || true

stop_bridge TERM
check "exit 0 under valgrind (99 = valgrind errors)" test "$BRIDGE_RC" -eq 0
check "valgrind: 0 errors" grep -q "ERROR SUMMARY: 0 errors" "$T_DIR/valgrind.log"
check "valgrind: no definite leaks" bash -c "! grep -q 'definitely lost: [1-9]' '$T_DIR/valgrind.log'"
if [ "$T_FAILS" -gt 0 ]; then
    echo "# --- valgrind log ---"
    sed 's/^/# /' "$T_DIR/valgrind.log" | tail -n 120
fi
t_done
