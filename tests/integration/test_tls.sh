#!/usr/bin/env bash
# Issue 14, defect 5: TLS done right. A test PKI made here with openssl: a
# CA, a broker certificate for 127.0.0.1/localhost (SAN), one for
# evil.example signed by the same CA, and one from another CA. A mosquitto
# TLS listener serves each in turn. The bridge (tls.verify_hostname on by
# default) refuses the evil.example certificate with "name mismatch" in its
# log and connects with the right one, and also with the wrong name when
# verify_hostname is false (on purpose); a certificate from an unknown CA is
# logged as such; a refused TCP connection is told apart from TLS failures;
# a missing ca_file/cert_file/key_file is a config error at its key (exit 6,
# also from --check-config).
source "$(dirname "$0")/lib.sh"

P="$T_DIR/pki"
mkdir -p "$P"
mkca ca "wbmb test CA"
mkca otherca "wbmb other CA"
mkcert good 127.0.0.1 ca "IP:127.0.0.1,DNS:localhost"
mkcert evil evil.example ca "DNS:evil.example"
mkcert stranger 127.0.0.1 otherca "IP:127.0.0.1,DNS:localhost"
mkcert expired 127.0.0.1 ca "IP:127.0.0.1,DNS:localhost" -1
check "test PKI made" openssl verify -CAfile "$P/ca.crt" "$P/good.crt" "$P/evil.crt"

TLS_PORT=$(free_port)
TLS_PID=""
# tls_broker CERT: (re)starts the TLS listener with that server certificate.
tls_broker() {
    if [ -n "$TLS_PID" ]; then
        kill -TERM "$TLS_PID" 2>/dev/null || true
        wait "$TLS_PID" 2>/dev/null || true
    fi
    cat >"$T_DIR/mosquitto-tls.conf" <<CONF
user $(id -un)
listener $TLS_PORT 127.0.0.1
allow_anonymous true
certfile $P/$1.crt
keyfile $P/$1.key
persistence false
CONF
    mosquitto -c "$T_DIR/mosquitto-tls.conf" >>"$T_DIR/mosquitto-tls.log" 2>&1 &
    TLS_PID=$!
    T_PIDS+=("$TLS_PID")
    wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$TLS_PORT"
}
tls_config() { # FILE HOST EXTRA_TLS_KEYS
    cat >"$1" <<YAML
mqtt:
  host: $2
  port: $TLS_PORT
  client_id: wbmb-tls-$$
  keepalive_s: 5
  tls: {ca_file: $P/ca.crt$3}
persistence: {db_path: $T_DIR/db/state.db, commit_interval_ms: 0}
http: {listen: ""}
bridge: {device_id: test_bridge}
devices:
  - id: tv
    state:
      - {topic: st/tv/power, field: power, type: bool}
YAML
}
# run_until PATTERN: a fresh bridge log, the bridge started, PATTERN awaited.
run_until() {
    : >"$T_DIR/bridge.log"
    start_bridge "$T_DIR/tls.yaml"
    wait_for 30 log_has "$1"
}

# ---- the wrong name is refused, with the cause ------------------------------------
tls_broker evil
tls_config "$T_DIR/tls.yaml" 127.0.0.1 ""
check "evil.example certificate for 127.0.0.1: refused as a name mismatch" \
    run_until "MQTT connect failed: TLS: name mismatch: the broker's certificate is valid but does not name '127.0.0.1'"
check "evil.example: never connected" bash -c "! grep -q 'MQTT connected' '$T_DIR/bridge.log'"
check "evil.example: no generic 'TCP/TLS connect failure (-1)' line" bash -c "! grep -q 'TCP/TLS connect failure' '$T_DIR/bridge.log'"
stop_bridge TERM
check "evil.example: clean stop" test "$BRIDGE_RC" -eq 0

# ---- ... and accepted only on purpose -----------------------------------------------
tls_config "$T_DIR/tls.yaml" 127.0.0.1 ", verify_hostname: false"
check "verify_hostname false: connects to the evil.example certificate" \
    run_until "MQTT connected to 127.0.0.1:$TLS_PORT \(MQTT 5, TLS without host name check\)"
stop_bridge TERM

# ---- the right name ----------------------------------------------------------------
tls_broker good
tls_config "$T_DIR/tls.yaml" 127.0.0.1 ""
check "127.0.0.1 certificate (IP SAN): connects with the host name checked" \
    run_until "MQTT connected to 127.0.0.1:$TLS_PORT \(MQTT 5, TLS\)"
mosquitto_pub -h 127.0.0.1 -p "$TLS_PORT" --cafile "$P/ca.crt" -t st/tv/power -m on -q 1
check "a message over TLS is applied" wait_for 20 bash -c "'$WBMB_BIN' -c '$T_DIR/tls.yaml' state get device:tv | jq -e '.power == true'"
stop_bridge TERM
tls_config "$T_DIR/tls.yaml" localhost ""
check "localhost (DNS SAN): connects" run_until "MQTT connected to localhost:$TLS_PORT \(MQTT 5, TLS\)"
stop_bridge TERM

# ---- an unknown CA ---------------------------------------------------------------------
tls_broker stranger
tls_config "$T_DIR/tls.yaml" 127.0.0.1 ""
check "a certificate from another CA: logged as an unknown CA, with OpenSSL's reason" \
    run_until "MQTT connect failed: TLS: unknown CA: .*unable to get local issuer certificate"
stop_bridge TERM

# ---- an expired certificate ---------------------------------------------------------------
tls_broker expired
check "an expired certificate: logged as expired" \
    run_until "MQTT connect failed: TLS: the broker's certificate has expired"
stop_bridge TERM

# ---- nothing listening --------------------------------------------------------------------
kill -TERM "$TLS_PID" 2>/dev/null || true
wait "$TLS_PID" 2>/dev/null || true
check "no broker: 'connection refused', told apart from TLS" \
    run_until "MQTT connect failed: connection refused by 127.0.0.1:$TLS_PORT"
check "no broker: not blamed on TLS" bash -c "! grep -q 'TLS' '$T_DIR/bridge.log'"
stop_bridge TERM

# ---- missing files are config errors ------------------------------------------------------
cat >"$T_DIR/missing.yaml" <<YAML
mqtt:
  tls:
    ca_file: $T_DIR/nope/ca.crt
    cert_file: $T_DIR/nope/client.crt
    key_file: $T_DIR/nope/client.key
YAML
rc=0
"$WBMB_BIN" -c "$T_DIR/missing.yaml" --check-config >"$T_DIR/check.out" 2>&1 || rc=$?
check "--check-config: exit 6 for missing TLS files (got $rc)" test "$rc" -eq 6
check "--check-config: ca_file error at FILE:LINE:COLUMN" grep -qF "$T_DIR/missing.yaml:3:14: cannot read tls.ca_file '$T_DIR/nope/ca.crt': No such file or directory" "$T_DIR/check.out"
check "--check-config: cert_file error" grep -qF "$T_DIR/missing.yaml:4:16: cannot read tls.cert_file" "$T_DIR/check.out"
check "--check-config: key_file error" grep -qF "$T_DIR/missing.yaml:5:15: cannot read tls.key_file" "$T_DIR/check.out"
rc=0
"$WBMB_BIN" -c "$T_DIR/missing.yaml" >"$T_DIR/run.out" 2>&1 || rc=$?
check "the daemon refuses to start on it: exit 6 (got $rc)" test "$rc" -eq 6
chmod 000 "$P/ca.crt"
if ! cat "$P/ca.crt" >/dev/null 2>&1; then
    tls_config "$T_DIR/tls.yaml" 127.0.0.1 ""
    rc=0
    "$WBMB_BIN" -c "$T_DIR/tls.yaml" --check-config >"$T_DIR/check2.out" 2>&1 || rc=$?
    check "an unreadable ca_file: exit 6, Permission denied" bash -c "[ $rc -eq 6 ] && grep -q 'cannot read tls.ca_file.*Permission denied' '$T_DIR/check2.out'"
else
    t_log "running as root: an unreadable file cannot be made; skipped"
fi
chmod 644 "$P/ca.crt"
t_done
