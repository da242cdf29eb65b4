#!/usr/bin/env bash
# test_security.sh - secrets, default bind, token auth, MQTT TLS.
#   1. With an MQTT password (password_file, checked by a mosquitto
#      password_file made with mosquitto_passwd) and an HTTP token, neither
#      secret appears in any log line or any HTTP answer (bodies and headers
#      of every endpoint, errors included).
#   2. Token auth on every mutating endpoint: 401 without or with a wrong
#      token (and nothing happens), 2xx with it.
#   3. Without http.listen the API binds 127.0.0.1:8080 (see below).
#   4. MQTT over TLS with a client certificate (a PKI made here with
#      openssl): the bridge connects and applies a message; with a wrong CA
#      it does not connect, logs why, keeps retrying and does not crash.
source "$(dirname "$0")/lib.sh"

PASS="pw-$RANDOM-$RANDOM-secret"
TOKEN="tok-$RANDOM-$RANDOM-secret"
printf '%s\n' "$PASS" >"$T_DIR/mqtt.secret"
printf '%s\n' "$TOKEN" >"$T_DIR/http.token"
chmod 600 "$T_DIR/mqtt.secret" "$T_DIR/http.token"

# ---- a broker that needs the password ----------------------------------------
MQTT_PORT=$(free_port)
touch "$T_DIR/passwd" && chmod 600 "$T_DIR/passwd"
mosquitto_passwd -b "$T_DIR/passwd" bridge "$PASS"
mosquitto_passwd -b "$T_DIR/passwd" tester tester-pw
# "user": mosquitto started as root would drop to user mosquitto, which
# cannot read the files of this test's private folder.
cat >"$T_DIR/mosquitto.conf" <<CONF
user $(id -un)
listener $MQTT_PORT 127.0.0.1
allow_anonymous false
password_file $T_DIR/passwd
persistence false
CONF
mosquitto -c "$T_DIR/mosquitto.conf" >>"$T_DIR/mosquitto.log" 2>&1 &
T_PIDS+=("$!")
pub() { mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -u tester -P tester-pw -q 1 "$@"; }
check "authenticating broker up" wait_for 20 pub -t wbmb/ping -m x
check "broker refuses anonymous clients" bash -c "! mosquitto_pub -h 127.0.0.1 -p $MQTT_PORT -t x -m y 2>/dev/null"

HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
HTTP_LISTEN="127.0.0.1:$HTTP_PORT" scenario_config "$T_DIR/config.yaml"
python3 - "$T_DIR/config.yaml" "$T_DIR" <<'PY'
import sys
p, d = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace("keepalive_s: 5}", "keepalive_s: 5, username: bridge, password_file: %s/mqtt.secret}" % d, 1)
s = s.replace('http: {listen: "', 'http: {token_file: %s/http.token, listen: "' % d, 1)
open(p, "w").write(s)
PY
start_bridge "$T_DIR/config.yaml"
check "bridge logs in with the password" wait_for 30 log_has "MQTT connected"
check "plain TCP: paho without TLS, no OpenSSL loaded" bash -c "grep -q libpaho-mqtt3a.so '/proc/$BRIDGE_PID/maps' && ! grep -qE 'libpaho-mqtt3as|libssl|libcrypto' '/proc/$BRIDGE_PID/maps'"
check "HTTP up" wait_for 20 curl -sf "$BASE/health"
pub -t st/tv/power -m 1
check "state applied" wait_for 20 bash -c "curl -sf $BASE/devices/tv/state | jq -e '.power == true'"

# req METHOD PATH [CURL ARGS...]: the answer (headers + body) is kept in
# $T_DIR/answers/; prints the status code.
mkdir -p "$T_DIR/answers"
req() {
    local m=$1 p=$2
    shift 2
    local a
    a=$(mktemp "$T_DIR/answers/a.XXXXXX")
    curl -s -m 30 --path-as-is -X "$m" -D "$a.head" -o "$a.body" \
        -w '%{http_code}' "$@" "$BASE$p"
}
auth=(-H "Authorization: Bearer $TOKEN")
for p in / /health /metrics /devices /devices/tv /devices/tv/state /scenarios /scenario/state \
    '/state-history/tv?limit=10' '/command-logs?limit=10' '/device-connection-history/tv' \
    /nope /devices/nope /devices/tv/action '/command-logs?status=x' "/devices/$TOKEN"; do
    req GET "$p" >/dev/null
done
curl -s -m 2 -N "$BASE/events" >"$T_DIR/answers/events.body" 2>/dev/null || true

# ---- token on every mutating endpoint ------------------------------------------
declare -A body=([/devices/tv/action]='{"action":"power_off"}' [/scenario/switch]='{"id":"movie"}' [/scenario/shutdown]='')
for p in /devices/tv/action /scenario/switch /scenario/shutdown; do
    check "POST $p without token: 401" test "$(req POST "$p" -d "${body[$p]}")" = 401
    check "POST $p with a wrong token: 401" test "$(req POST "$p" -H 'Authorization: Bearer wrong' -d "${body[$p]}")" = 401
    check "POST $p with the token as a prefix: 401" test "$(req POST "$p" -H "Authorization: Bearer ${TOKEN}x" -d "${body[$p]}")" = 401
    check "POST $p with another scheme: 401" test "$(req POST "$p" -H "Authorization: Basic $TOKEN" -d "${body[$p]}")" = 401
done
check "nothing ran without the token (tv still on)" bash -c "curl -sf $BASE/devices/tv/state | jq -e '.power == true'"
check "no command logged without the token" bash -c "[ \"\$(curl -sf '$BASE/command-logs' | jq length)\" = 0 ]"
check "scenario untouched without the token" bash -c "curl -sf $BASE/scenario/state | jq -e '.scenario_id != \"movie\"'"
for p in /devices/tv/action /scenario/switch /scenario/shutdown; do
    code=$(req POST "$p" "${auth[@]}" -d "${body[$p]}")
    check "POST $p with the token: 2xx ($code)" test "${code:0:1}" = 2
done
req POST /devices/tv/action "${auth[@]}" -d '{"action":"nope"}' >/dev/null
req GET /metrics >/dev/null
req GET '/command-logs?limit=100' >/dev/null
pub -t "/devices/tv/controls/power_on/on" -m 1
kill -HUP "$BRIDGE_PID"
sleep 1
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0

check "answers collected" test "$(ls "$T_DIR/answers" | wc -l)" -gt 100
check "no log line holds the MQTT password" bash -c "! grep -rqF -- '$PASS' '$T_DIR/bridge.log'"
check "no log line holds the HTTP token" bash -c "! grep -rqF -- '$TOKEN' '$T_DIR/bridge.log'"
check "no HTTP answer holds the MQTT password" bash -c "! grep -rqF -- '$PASS' '$T_DIR/answers'"
check "no HTTP answer holds the HTTP token" bash -c "! grep -rqF -- '$TOKEN' '$T_DIR/answers'"
check "--check-config does not print secrets" bash -c "! '$WBMB_BIN' -c '$T_DIR/config.yaml' --check-config 2>&1 | grep -qF -e '$PASS' -e '$TOKEN'"
check "secrets absent from the database" bash -c "! sqlite3 '$T_DIR/db/state.db' .dump | grep -qF -e '$PASS' -e '$TOKEN'"

# ---- default bind address -------------------------------------------------------
# The config below omits http.listen. Port 8080 may be taken on a shared
# machine, so the proof is two-fold: the log line names the address the
# default resolved to (whether or not the bind succeeded), and when 8080 was
# free, ss shows the listener on 127.0.0.1:8080 owned by the bridge, not on
# 0.0.0.0 or [::].
sed -e "/^http:/d" -e "s#db_path: [^,}]*#db_path: $T_DIR/db2/state.db#" -e "s/client_id: [^,}]*/client_id: wbmb-sec2-$$/" \
    "$T_DIR/config.yaml" >"$T_DIR/default.yaml"
check "config without http section" bash -c "! grep -q '^http' '$T_DIR/default.yaml'"
busy=0
ss -ltnH 'sport = :8080' | grep -q . && busy=1
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/default.yaml"
check "default listen address is 127.0.0.1:8080" wait_for 30 log_has "http: (listening on|cannot listen on) 127\.0\.0\.1:8080"
if [ "$busy" = 0 ]; then
    check "ss: listener on 127.0.0.1:8080 is the bridge" wait_for 10 bash -c "ss -ltnpH 'sport = :8080' | grep -q '127.0.0.1:8080.*pid=$BRIDGE_PID,'"
    check "ss: not on a wildcard address" bash -c "! ss -ltnpH 'sport = :8080' | grep 'pid=$BRIDGE_PID,' | grep -qE '(0\.0\.0\.0|\*|\[::\]):8080'"
else
    t_log "port 8080 was busy before the test: the bind itself could not be checked with ss"
fi
stop_bridge TERM

# ---- MQTT over TLS ---------------------------------------------------------------
P="$T_DIR/pki"
mkdir -p "$P"
mkca ca "wbmb test CA"
mkca otherca "wbmb other CA"
mkcert server 127.0.0.1 ca "IP:127.0.0.1"
mkcert client wbmb-bridge ca
mkcert tester wbmb-tester ca
check "test PKI made" openssl verify -CAfile "$P/ca.crt" "$P/server.crt" "$P/client.crt"
TLS_PORT=$(free_port)
cat >"$T_DIR/mosquitto-tls.conf" <<CONF
user $(id -un)
listener $TLS_PORT 127.0.0.1
allow_anonymous true
cafile $P/ca.crt
certfile $P/server.crt
keyfile $P/server.key
require_certificate true
persistence false
CONF
mosquitto -c "$T_DIR/mosquitto-tls.conf" >>"$T_DIR/mosquitto-tls.log" 2>&1 &
T_PIDS+=("$!")
tpub() { mosquitto_pub -h 127.0.0.1 -p "$TLS_PORT" --cafile "$P/ca.crt" --cert "$P/tester.crt" --key "$P/tester.key" -q 1 "$@"; }
check "TLS broker up" wait_for 20 tpub -t wbmb/ping -m x
check "TLS broker refuses a client without certificate" bash -c "! mosquitto_pub -h 127.0.0.1 -p $TLS_PORT --cafile $P/ca.crt -t x -m y 2>/dev/null"
tls_config() { # FILE CA
    cat >"$1" <<YAML
mqtt:
  host: 127.0.0.1
  port: $TLS_PORT
  client_id: wbmb-tls-$$
  keepalive_s: 5
  tls: {ca_file: $2, cert_file: $P/client.crt, key_file: $P/client.key}
persistence: {db_path: $T_DIR/db3/state.db, commit_interval_ms: 0}
http: {listen: ""}
bridge: {device_id: test_bridge}
devices:
  - id: tv
    state:
      - {topic: st/tv/power, field: power, type: bool}
YAML
}
tls_config "$T_DIR/tls.yaml" "$P/ca.crt"
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/tls.yaml"
check "bridge connects over TLS with its client certificate" wait_for 30 log_has "MQTT connected"
tpub -t st/tv/power -m on
check "message over TLS applied" wait_for 20 bash -c "'$WBMB_BIN' -c '$T_DIR/tls.yaml' state get device:tv | jq -e '.power == true'"
check "TLS run: paho's TLS library is loaded" grep -q 'libpaho-mqtt3as' "/proc/$BRIDGE_PID/maps"
check "http.listen \"\": libmicrohttpd and GnuTLS not loaded" bash -c "! grep -qE 'libmicrohttpd|libgnutls' '/proc/$BRIDGE_PID/maps'"
stop_bridge TERM
check "TLS run: clean stop" test "$BRIDGE_RC" -eq 0

tls_config "$T_DIR/tls-wrong.yaml" "$P/otherca.crt"
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/tls-wrong.yaml"
check "wrong CA: connect failure logged" wait_for 30 log_has "MQTT (connect|connection).*retrying"
check "wrong CA: keeps retrying" wait_for 20 bash -c "[ \$(grep -cE 'MQTT (connect|connection).*retrying' '$T_DIR/bridge.log') -ge 2 ]"
check "wrong CA: never connected" bash -c "! grep -q 'MQTT connected' '$T_DIR/bridge.log'"
check "wrong CA: still running" kill -0 "$BRIDGE_PID"
stop_bridge TERM
check "wrong CA: clean stop" test "$BRIDGE_RC" -eq 0
t_done
