#!/usr/bin/env bash
# test_bad_input_corpus.sh - hostile input through the real binary, beyond
# test_bad_input.sh (plain MQTT payloads) and test_http.sh (basic HTTP
# errors): JSON payloads with deep object nesting, huge numbers, NaN,
# invalid UTF-8 inside strings, 1 MB and empty JSON payloads, junk on the
# action and scenario /on topics; HTTP bodies with deep nesting, NUL bytes,
# 1 MB (413, read and discarded first: see test_http_limits.sh), path tricks,
# raw requests whose headers never end, and slow-loris clients trickling a
# header byte per second while other requests must still be answered. Each
# gets its documented answer, nothing changes, everything is counted in
# /metrics, and the daemon neither crashes nor leaks (ASan build).
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
HTTP_LISTEN="127.0.0.1:$HTTP_PORT" scenario_config "$T_DIR/config.yaml"
# a JSON-bound device, inserted before scenarios:
python3 - "$T_DIR/config.yaml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
plug = "  - id: plug\n    name: Plug\n    state:\n      - {topic: z2m/plug, type: json, fields: {power: power, state: state}}\n"
s = s.replace("scenarios:\n", plug + "scenarios:\n", 1)
open(p, "w").write(s)
PY
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
check "HTTP up" wait_for 20 curl -sf "$BASE/health"
pub -t z2m/plug -m '{"state": "ON", "power": 5}'
pub -t st/tv/power -m 1
check "good values applied" wait_for 20 bash -c "curl -sf $BASE/devices/plug/state | jq -e '.state == \"ON\" and .power == 5'"
metric() { curl -sf "$BASE/metrics" | sed -n "s/^$1 //p"; }
rej0=$(metric 'wbmb_messages_total{outcome="rejected"}')
h4_0=$(metric 'wbmb_http_responses_total{class="4xx"}')
snap() { curl -sf "$BASE/devices" | jq -cS '[.[] | {id, state}]'; }
before=$(snap)

# ---- MQTT ------------------------------------------------------------------------
bad=0
send_bad() { pub "$@"; bad=$((bad + 1)); }
python3 -c "print('{\"a\":' * 40 + '1' + '}' * 40)" >"$T_DIR/deep_obj"
send_bad -t z2m/plug -f "$T_DIR/deep_obj"
send_bad -t z2m/plug -m '{"power": 1e400}'
send_bad -t z2m/plug -m '{"power": NaN}'
send_bad -t z2m/plug -m '{"power": Infinity}'
send_bad -t z2m/plug -m '{"power": -1e999999}'
printf '{"state": "\xed\xa0\x80"}' >"$T_DIR/surrogate"
send_bad -t z2m/plug -f "$T_DIR/surrogate"
printf '{"st\xffate": "ON"}' >"$T_DIR/badkey"
send_bad -t z2m/plug -f "$T_DIR/badkey"
printf '{"state": "ON"}\0junk' >"$T_DIR/nul"
send_bad -t z2m/plug -f "$T_DIR/nul"
send_bad -t z2m/plug -n
python3 -c "print('{\"state\": \"' + 'x' * 1048576 + '\"}')" >"$T_DIR/mega"
send_bad -t z2m/plug -f "$T_DIR/mega"
send_bad -t st/tv/power -m 99999999999999999999999999999999
# action and scenario topics: refused requests change nothing
pub -t /devices/amp/controls/set_input/on -m 'hdmi9'
pub -t /devices/amp/controls/set_input/on -f "$T_DIR/deep_obj"
pub -t /devices/amp/controls/set_input/on -f "$T_DIR/mega"
pub -t /devices/test_bridge/controls/scenario/on -m '../../etc/passwd'
pub -t /devices/test_bridge/controls/scenario/on -f "$T_DIR/mega"
pub -t z2m/plug -m '{"state": "MARK"}'
check "marker applied after the bad messages" wait_for 30 bash -c "curl -sf $BASE/devices/plug/state | jq -e '.state == \"MARK\"'"
pub -t z2m/plug -m '{"state": "ON"}'
check "plug back" wait_for 30 bash -c "curl -sf $BASE/devices/plug/state | jq -e '.state == \"ON\"'"
check "every bad MQTT message counted as rejected ($bad)" wait_for 10 bash -c \
    "[ \$(curl -sf $BASE/metrics | sed -n 's/^wbmb_messages_total{outcome=\"rejected\"} //p') -ge $((rej0 + bad)) ]"
check "no action ran, no scenario started" bash -c "curl -sf $BASE/scenario/state | jq -e '.scenario_id == null or . == {}' && [ \$(curl -sf '$BASE/command-logs?status=sent' | jq length) = 0 ]"

# ---- HTTP bodies -----------------------------------------------------------------
code() { curl -s -m 30 --path-as-is -o "$T_DIR/body" -w '%{http_code}' "$@"; }
is_err() { [ "$1" = "$2" ] && jq -e '.error | type == "string"' "$T_DIR/body" >/dev/null; }
n4=0
expect() { # WANT DESCRIPTION CURL-ARGS...
    local want=$1 what=$2
    shift 2
    check "$what: $want" is_err "$(code "$@")" "$want"
    n4=$((n4 + 1))
}
python3 -c "print('{\"action\":\"power_on\",\"params\":' + '{\"a\":' * 50 + '1' + '}' * 51)" >"$T_DIR/deep_body"
expect 400 "deeply nested body" -X POST "$BASE/devices/tv/action" --data-binary @"$T_DIR/deep_body"
python3 -c "print('[' * 100000)" >"$T_DIR/brackets"
expect 413 "100k open brackets (over 64 KiB)" -X POST "$BASE/devices/tv/action" --data-binary @"$T_DIR/brackets"
printf '{"action":"power_off"}\0{"x":1}' >"$T_DIR/nul_body"
expect 400 "NUL byte inside the body" -X POST "$BASE/devices/tv/action" --data-binary @"$T_DIR/nul_body"
printf '{"action":"\xff\xfe"}' >"$T_DIR/bad_utf8_body"
expect 400 "invalid UTF-8 action name" -X POST "$BASE/devices/tv/action" --data-binary @"$T_DIR/bad_utf8_body"
expect 400 "NaN param" -X POST "$BASE/devices/dimmer/action" -d '{"action":"set_level","params":{"level":NaN}}'
expect 400 "huge number param" -X POST "$BASE/devices/dimmer/action" -d '{"action":"set_level","params":{"level":1e400}}'
expect 400 "int64 overflow param" -X POST "$BASE/devices/dimmer/action" -d '{"action":"set_level","params":{"level":99999999999999999999}}'
expect 400 "empty body" -X POST "$BASE/devices/tv/action" -H 'Content-Type: application/json' -d ''
expect 400 "scenario id not a string" -X POST "$BASE/scenario/switch" -d '{"id":["movie"]}'
expect 404 "scenario id with a path" -X POST "$BASE/scenario/switch" -d '{"id":"../movie"}'
head -c 1048576 /dev/zero | tr '\0' ' ' >"$T_DIR/mega_body"
expect 413 "1 MB body" -X POST "$BASE/devices/tv/action" --data-binary @"$T_DIR/mega_body"
expect 413 "1 MB chunked body" -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$T_DIR/mega_body" "$BASE/devices/tv/action"

# ---- paths -----------------------------------------------------------------------
for p in /devices/../health /devices/%2e%2e/health /devices/%2E%2E/state //health /health/ \
    /devices//state /devices/tv//state /devices/tv/state/.. '/devices/tv%2fstate' /DEVICES \
    "/devices/$(printf 'a%.0s' $(seq 100))" /devices/tv%00 /./health; do
    expect 404 "path $p" "$BASE$p"
done
expect 405 "PUT on a GET route" -X PUT "$BASE/devices"
expect 400 "limit with a %" "$BASE/state-history/tv?limit=1%30"

# ---- raw sockets: headers that never end, slow loris ------------------------------
python3 - "$HTTP_PORT" "$T_DIR" <<'PY' &
import socket, sys, time
port, d = int(sys.argv[1]), sys.argv[2]
# 3 silent clients: half a request line, then nothing
silent = []
for i in range(3):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: ")
    silent.append(s)
# 3 slow-loris clients: one header byte per second
loris = []
for i in range(3):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET /health HTTP/1.1\r\n")
    loris.append(s)
open(d + "/raw.started", "w").close()
start = time.time(); closed_at = {}; loris_closed = {}
def gone(s):
    s.settimeout(0.01)
    try:
        return s.recv(1024) == b""
    except socket.timeout:
        return False
    except OSError:
        return True
while time.time() - start < 45:
    for i, s in enumerate(loris):
        if i in loris_closed: continue
        try: s.sendall(b"X")
        except OSError: loris_closed[i] = time.time() - start; continue
        if gone(s): loris_closed[i] = time.time() - start
    for i, s in enumerate(silent):
        if i not in closed_at and gone(s): closed_at[i] = time.time() - start
    if len(closed_at) == len(silent) and len(loris_closed) == len(loris): break
    time.sleep(1)
with open(d + "/raw.result", "w") as f:
    f.write("%d %s\n" % (len(closed_at), " ".join("%.0f" % v for v in closed_at.values())))
with open(d + "/loris.result", "w") as f:
    f.write("%d %s\n" % (len(loris_closed), " ".join("%.0f" % v for v in loris_closed.values())))
PY
RAW_PID=$!
T_PIDS+=("$RAW_PID")
check "raw clients connected" wait_for 10 test -f "$T_DIR/raw.started"
ok_during=0
for i in $(seq 10); do
    curl -sf -m 5 "$BASE/health" >/dev/null && ok_during=$((ok_during + 1))
    sleep 0.5
done
check "other requests answered while 6 clients hang (10/10, got $ok_during)" test "$ok_during" -eq 10
wait "$RAW_PID" || true
check "silent clients closed by the 10 s header deadline ($(cat "$T_DIR/raw.result" 2>/dev/null))" \
    bash -c "[ \"\$(cut -d' ' -f1 '$T_DIR/raw.result')\" = 3 ]"
check "slow-loris clients (a byte a second) cut too ($(cat "$T_DIR/loris.result" 2>/dev/null))" \
    bash -c "[ \"\$(cut -d' ' -f1 '$T_DIR/loris.result')\" = 3 ]"
check "cut connections counted in /metrics" bash -c \
    "[ \$(curl -sf $BASE/metrics | sed -n 's/^wbmb_http_slow_clients_cut_total //p') -ge 6 ]"

# ---- nothing changed, everything counted ---------------------------------------------
check "state unchanged by every bad input" test "$(snap)" = "$before"
check "4xx answers counted ($n4 or more)" bash -c \
    "[ \$(curl -sf $BASE/metrics | sed -n 's/^wbmb_http_responses_total{class=\"4xx\"} //p') -ge $((h4_0 + n4)) ]"
check "daemon still running" kill -0 "$BRIDGE_PID"
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
check "integrity_check ok" test "$(sql "$T_DIR/db/state.db" 'pragma integrity_check')" = ok
t_done
