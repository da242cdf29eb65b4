#!/usr/bin/env bash
# systemd integration: the real binary with NOTIFY_SOCKET pointing at a
# datagram socket read by a small python3 helper (sd_notify protocol), the
# watchdog at WATCHDOG_USEC=400000, SIGHUP and SIGTERM; then
# `systemd-analyze verify` on the shipped unit.
source "$(dirname "$0")/lib.sh"

NOTIFY_LOG="$T_DIR/notify.log"
: >"$NOTIFY_LOG"
# One line per datagram, newlines inside shown as '|'.
python3 - "$T_DIR/notify.sock" "$NOTIFY_LOG" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(4096)
        f.write(data.decode("utf-8", "replace").replace("\n", "|") + "\n")
PY
T_PIDS+=("$!")
check "notify helper listens" wait_for 10 test -S "$T_DIR/notify.sock"

notified() { grep -qE "$1" "$NOTIFY_LOG"; }
count_of() { grep -cE "$1" "$NOTIFY_LOG" || true; }

# The broker is not up yet: READY=1 must not wait for it (MQTT retries).
MQTT_PORT=$(free_port)
basic_config "$T_DIR/config.yaml"
NOTIFY_SOCKET="$T_DIR/notify.sock" WATCHDOG_USEC=400000 start_bridge "$T_DIR/config.yaml"
check "READY=1 while MQTT is still retrying" wait_for 20 notified '^READY=1'
check "the store was open before READY" test -f "$T_DIR/db/state.db"
check "MQTT was connecting or retrying at READY" wait_for 10 log_has "MQTT (connect failed|connected)"
check "READY carries a STATUS" notified '^READY=1\|STATUS=running$'

start_broker "$MQTT_PORT"
check "MQTT connects after READY" wait_for 30 log_has "MQTT connected"

n0=$(count_of '^WATCHDOG=1$')
sleep 1.5
n1=$(count_of '^WATCHDOG=1$')
t_log "WATCHDOG=1 datagrams: $n0 then $n1 after 1.5 s"
check "WATCHDOG=1 repeats every WATCHDOG_USEC/2 (>= 4 in 1.5 s)" test $((n1 - n0)) -ge 4
check "WATCHDOG=1 not flooding (<= 12 in 1.5 s)" test $((n1 - n0)) -le 12

kill -HUP "$BRIDGE_PID"
check "reload done" wait_for 20 log_has "reload done"
check "RELOADING=1 with MONOTONIC_USEC on SIGHUP" wait_for 10 notified '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$'
check "READY=1 again after the reload" wait_for 10 bash -c \
    "grep -vE '^WATCHDOG' '$NOTIFY_LOG' | grep -A1 '^RELOADING=1' | tail -n1 | grep -q '^READY=1'"

stop_bridge TERM
check "clean stop (exit 0)" test "$BRIDGE_RC" -eq 0
check "STOPPING=1 on SIGTERM" notified '^STOPPING=1$'
check "STOPPING=1 is the last state change" \
    test "$(grep -vE '^WATCHDOG' "$NOTIFY_LOG" | tail -n1)" = "STOPPING=1"

# Without NOTIFY_SOCKET nothing changes (the no-op path, under ASan).
start_bridge "$T_DIR/config.yaml"
check "runs without NOTIFY_SOCKET" wait_for 30 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge 2 ]"
stop_bridge TERM
check "clean stop without NOTIFY_SOCKET" test "$BRIDGE_RC" -eq 0

# The unit file, with ExecStart pointed at the binary under test.
UNIT_SRC="$WBMB_SOURCE_DIR/config/systemd/wb-mqtt-bridge.service"
if ! command -v systemd-analyze >/dev/null; then
    t_log "skip: systemd-analyze verify (systemd-analyze not installed)"
else
    mkdir -p "$T_DIR/unit"
    sed "s#/usr/bin/wb-mqtt-bridge#$WBMB_BIN#g" "$UNIT_SRC" >"$T_DIR/unit/wb-mqtt-bridge.service"
    if out=$(cd "$T_DIR/unit" && systemd-analyze verify --man=no ./wb-mqtt-bridge.service 2>&1); then
        ok "systemd-analyze verify accepts the unit"
    elif echo "$out" | grep -qiE "Failed to (initialize|connect|setup)|not booted|Operation not permitted"; then
        t_log "skip: systemd-analyze cannot run here: $out"
    else
        echo "$out" | sed 's/^/# /'
        fail "systemd-analyze verify accepts the unit"
    fi
fi
if command -v systemd-analyze >/dev/null &&
    (cd "$T_DIR/unit" && systemd-analyze security --offline=yes --no-pager ./wb-mqtt-bridge.service \
        >"$T_DIR/security.txt" 2>&1); then
    t_log "$(grep 'Overall exposure' "$T_DIR/security.txt")"
    check "systemd-analyze security: exposure at most 3.0 (OK)" bash -c \
        "cd '$T_DIR/unit' && systemd-analyze security --offline=yes --threshold=30 --no-pager ./wb-mqtt-bridge.service >/dev/null 2>&1"
else
    t_log "skip: systemd-analyze security --offline not available here"
fi
check "unit is Type=notify with a watchdog" grep -qx 'Type=notify' "$UNIT_SRC"
check "unit WatchdogSec=30" grep -qx 'WatchdogSec=30' "$UNIT_SRC"
check "unit does not restart on usage/config errors" grep -qx 'RestartPreventExitStatus=2 6' "$UNIT_SRC"
t_done
