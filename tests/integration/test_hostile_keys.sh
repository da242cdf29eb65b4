#!/usr/bin/env bash
# test_hostile_keys.sh - a hostile corpus of JSON state messages through a
# real mosquitto and the real binary (issue 14): keys with every control
# character, C1 controls, non-characters, surrogates, overlong UTF-8, 64 KiB
# keys, keys with '/', '+', '#', '.', empty keys, NULs in values, nulls,
# huge and tiny numbers. Before the topic gate, one such key made the bridge
# publish a topic mosquitto refuses: the broker dropped the client, and the
# reconnect republished it, for ever. Checked here: the broker's own log
# shows one connection of the bridge's client per start and no drop (also
# after a restart, with the odd keys persisted); a second device keeps
# applying throughout; the odd fields are applied, stored and served;
# values with a NUL reach the broker byte-exact; a null leaves the last
# value with meta/error "r"; bad fields are counted; nothing crashes (ASan).
source "$(dirname "$0")/lib.sh"

start_broker
HTTP_PORT=$(free_port)
BASE="http://127.0.0.1:$HTTP_PORT"
CID="wbmb-hostile-$$"
cat >"$T_DIR/config.yaml" <<YAML
mqtt: {host: 127.0.0.1, port: $MQTT_PORT, client_id: $CID, keepalive_s: 5}
persistence: {db_path: $T_DIR/db/state.db, commit_interval_ms: 50}
http: {listen: "127.0.0.1:$HTTP_PORT"}
bridge: {device_id: test_bridge, mirror_min_interval_ms: 0}
devices:
  - id: hostile
    state:
      - {topic: z2m/hostile, type: json}
  - id: good
    state:
      - {topic: z2m/good, type: json}
YAML
start_bridge "$T_DIR/config.yaml"
check "bridge connects" wait_for 30 log_has "MQTT connected"
check "HTTP up" wait_for 20 curl -sf "$BASE/health"

# The corpus: one file per message (python writes the exact bytes).
mkdir -p "$T_DIR/corpus"
python3 - "$T_DIR/corpus" <<'PY'
import json, os, sys
out = sys.argv[1]
msgs = []
def add(raw):
    msgs.append(raw if isinstance(raw, bytes) else raw.encode())
esc = lambda cp: "\\u%04x" % cp
# the issue's own example, then every C0 control, DEL and every C1 control in a key
add('{"temperature":21.5,"a\\tb":1}')
for cp in list(range(0x01, 0x20)) + [0x7F] + list(range(0x80, 0xA0)):
    add('{"seq":%d,"k%sk":%d}' % (cp, esc(cp), cp))
# non-characters, escaped and raw
for cp in list(range(0xFDD0, 0xFDF0)) + [0xFFFE, 0xFFFF]:
    add('{"nc%s":1,"ncseq":%d}' % (esc(cp), cp))
add(b'{"raw\xf0\x9f\xbf\xbe":1,"raw\xf4\x8f\xbf\xbf":2,"ncraw":1}')        # U+1FFFE, U+10FFFF
add('{"pair\\ud83f\\udffe":1}')                                          # U+1FFFE as a pair
# surrogates: escaped lone ones become U+FFFD; raw ones are invalid UTF-8
add('{"s\\ud800":1,"s\\udfff":2,"sok":1}')
add(b'{"raw\xed\xa0\x80":1}')
# overlong UTF-8 (invalid: the whole message is refused)
add(b'{"ov\xc0\xaf":1}')
add(b'{"ov\xe0\x80\xaf":1}')
add(b'{"ov\xf0\x80\x80\xaf":1}')
# 64 KiB keys: just under the payload limit (a field too long), and over it
add('{"%s":1,"after_long":1}' % ("K" * 65400))
add('{"%s":1}' % ("K" * 65536))
# separators, wildcards, dots, empty keys, deep levels
add('{"a/b":1,"+":2,"#":3,"x/+/#":4,".":5,"..":6,"":7,"/":8,"$SYS":9,"%s":10,"dots.ok":11}' % ("/" * 250))
# NULs in values (and one in a key: that message is refused)
add('{"v":"\\u0000QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ","w":"a\\u0000b"}')
add('{"k\\u0000ey":1}')
# huge and tiny numbers
add('{"n_max":1e308,"n_min":-1e308,"n_sub":5e-324,"n_under":1e-400,"n_big":9223372036854775808,'
    '"n_neg":-9223372036854775809,"n_long":123456789012345678901234567890,"n_over":1e400,'
    '"n_nan":NaN,"n_inf":-Infinity,"n_int":9223372036854775807}')
# nulls
add('{"battery":87}')
add('{"battery":null}')
add('{"nested":{"a\\tb":[null,"\\u0000"]}}')
for i, m in enumerate(msgs):
    open(os.path.join(out, "%03d" % i), "wb").write(m)
print(len(msgs))
PY
n=0
for f in "$T_DIR"/corpus/*; do
    pub -t z2m/hostile -f "$f"
    n=$((n + 1))
    pub -t z2m/good -m "{\"n\":$n}"
done
t_log "published $n hostile messages"
check "the other device applied every message" wait_for 60 bash -c "curl -sf $BASE/devices/good/state | jq -e '.n == $n'"
check "the bridge is alive" kill -0 "$BRIDGE_PID"
conns() { grep -c "New client connected from .* as $CID " "$T_DIR/mosquitto.log" || true; }
check "broker log: one connection of the bridge" test "$(conns)" = 1
check "broker log: the bridge was never dropped" bash -c "! grep -E 'Client $CID (disconnected|closed)|malformed|protocol error' '$T_DIR/mosquitto.log'"
metric() { curl -sf "$BASE/metrics" | sed -n "s/^$1 //p"; }
check "metrics: no disconnect" test "$(metric wbmb_mqtt_disconnects_total)" = 0
check "metrics: the gate refused nothing (nothing bad reached it)" test "$(metric wbmb_mqtt_topics_refused_total)" = 0
# 2 (64 KiB key, n_over) + n_nan + n_inf: fields rejected alone; their messages applied the rest
check "metrics: bad fields counted ($(metric wbmb_fields_rejected_total))" test "$(metric wbmb_fields_rejected_total)" -ge 4

st() { curl -sf "$BASE/devices/hostile/state"; }
check "the issue's example: both fields applied" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.temperature == 21.5 and .[\"a\\tb\"] == 1'"
check "control-character keys applied and served" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.[\"k\\u007fk\"] == 127 and .[\"k\\u0085k\"] == 133 and .[\"k\\u0001k\"] == 1 and .seq == 159'"
check "non-character keys applied" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.[\"nc\\ufdd0\"] == 1 and .[\"nc\\uffff\"] == 1 and .ncraw == 1'"
check "escaped lone surrogates applied (as U+FFFD)" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.sok == 1'"
check "separator, wildcard, dot and empty keys applied" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.[\"a/b\"] == 1 and .[\"+\"] == 2 and .[\"#\"] == 3 and .[\"\"] == 7 and .[\"..\"] == 6 and .[\"dots.ok\"] == 11'"
check "a 64 KiB key is rejected alone" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.after_long == 1 and ([keys[] | select(length > 128)] | length) == 0'"
check "numbers: huge and tiny kept, past int64 as doubles, out of range rejected alone" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.n_max == 1e308 and .n_sub > 0 and .n_under == 0 and .n_big == 9223372036854775808 and .n_long > 1e29 and .n_int == 9223372036854775807 and (has(\"n_over\") or has(\"n_nan\") or has(\"n_inf\") | not)'"
check "null is kept in the state" bash -c "curl -sf $BASE/devices/hostile/state | jq -e 'has(\"battery\") and .battery == null'"
check "odd keys persisted" wait_for 20 bash -c "sqlite3 -readonly '$T_DIR/db/state.db' \"select value from state_store where key='device:hostile'\" | jq -e '.[\"a\\tb\"] == 1 and .[\"a/b\"] == 1 and .n_big == 9223372036854775808'"

# The broker's view of the mirror.
retained() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$1" -C 1 -W 3 -N --retained-only 2>/dev/null || true; }
check "temperature mirrored" test "$(retained /devices/hostile/controls/temperature)" = 21.5
check "a value with a NUL is byte-exact" bash -c "cmp <(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/hostile/controls/v -C 1 -W 3 -N --retained-only) <(printf '\\0QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ')"
check "a short value with a NUL is byte-exact" bash -c "cmp <(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/hostile/controls/w -C 1 -W 3 -N --retained-only) <(printf 'a\\0b')"
check "null: the last value stays on the broker" test "$(retained /devices/hostile/controls/battery)" = 87
check "null: meta/error r" test "$(retained /devices/hostile/controls/battery/meta/error)" = r
check "a number past int64 mirrored as a double" test "$(retained /devices/hostile/controls/n_big)" = 9.223372036854776e+18
check "one warning per field, not per message" test "$(grep -c "field 'a?b'" "$T_DIR/bridge.log")" = 1

# Restart: the odd keys come back from the store; the bridge connects once.
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" = 0
start_bridge "$T_DIR/config.yaml"
check "bridge reconnects after a restart" wait_for 30 bash -c "[ \$(grep -c 'MQTT connected' '$T_DIR/bridge.log') -ge 2 ]"
pub -t z2m/good -m '{"n":-1}'
check "the other device applies after the restart" wait_for 30 bash -c "curl -sf $BASE/devices/good/state | jq -e '.n == -1'"
check "restored odd fields served" bash -c "curl -sf $BASE/devices/hostile/state | jq -e '.[\"a\\tb\"] == 1'"
check "republish done (temperature retained again)" wait_for 20 bash -c "[ \"\$(mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t /devices/hostile/controls/temperature -C 1 -W 3 --retained-only)\" = 21.5 ]"
check "broker log: two connections in all (one per start)" test "$(conns)" = 2
check "broker log: still never dropped for a bad packet" bash -c "! grep -E 'malformed|protocol error' '$T_DIR/mosquitto.log'"
check "metrics: no disconnect after the restart" test "$(metric wbmb_mqtt_disconnects_total)" = 0
t_done
