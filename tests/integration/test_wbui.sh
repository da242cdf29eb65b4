#!/usr/bin/env bash
# test_wbui.sh - the web-UI test client (tests/tools/wbui.c) on its own,
# without the bridge: hand-made retained devices published with
# mosquitto_pub to a real mosquitto. "good" has one correct control of each
# kind, "broken" one deliberate mistake per control; check, dump, press and
# wait are run against them as the other integration tests will.
. "$(dirname "$0")/lib.sh"

: "${WBMB_WBUI:?WBMB_WBUI must point at the wbui binary}"
start_broker

W=("$WBMB_WBUI" -p "$MQTT_PORT")
# rpub TOPIC PAYLOAD: a retained QoS 1 message; rdel TOPIC: deletes it.
rpub() { pub -r -t "$1" -m "$2"; }
rdel() { pub -r -t "$1" -n; }

# ---- the hand-made devices -------------------------------------------------
G=/devices/good
rpub $G/meta '{"driver":"hand","title":{"en":"Good","ru":"Хорошее"}}'
rpub $G/controls/relay/meta '{"type":"switch","order":1,"title":{"en":"Relay"}}'
rpub $G/controls/relay 0
rpub $G/controls/level/meta '{"type":"range","min":0,"max":100,"order":2}'
rpub $G/controls/level 40
rpub $G/controls/power/meta '{"type":"value","units":"W","precision":0.1,"order":3}'
rpub $G/controls/power 12.5
rpub $G/controls/setpoint/meta '{"type":"value","units":"deg C","min":5,"max":30,"readonly":false}'
rpub $G/controls/setpoint 21
rpub $G/controls/mode/meta '{"type":"text","readonly":false,"enum":{"auto":{"en":"Auto"},"heat":{"en":"Heat","ru":"Нагрев"}}}'
rpub $G/controls/mode auto
rpub $G/controls/reset/meta '{"type":"pushbutton","title":{"en":"Reset"}}'
rpub $G/controls/label/meta '{"type":"text","readonly":true}'
rpub $G/controls/label hello
rpub $G/controls/door/meta '{"type":"alarm"}'
rpub $G/controls/door 1
rpub $G/controls/temp/meta/type temperature
rpub $G/controls/temp 22.5
rpub $G/controls/temp/meta/error r
rpub $G/controls/color/meta '{"type":"rgb"}'
rpub $G/controls/color '255;0;10'
rpub $G/controls/speed/meta '{"type":"value","readonly":false,"enum":{"0x10":{"en":"Sixteen"},"1":{"en":"One"}}}'
rpub $G/controls/speed 16
rpub $G/controls/dim/meta '{"type":"range","max":10,"readonly":false}'
rpub $G/controls/dim/meta/max 10
rpub $G/controls/dim/meta/readonly 0
rpub $G/controls/dim 3

B=/devices/broken
rpub $B/meta '{"driver":"hand"}'
rpub $B/controls/badjson/meta '{"type":"switch",'
rpub $B/controls/badjson 1
rpub $B/controls/sw2/meta '{"type":"switch"}'
rpub $B/controls/sw2 2
rpub $B/controls/oob/meta '{"type":"range","min":0,"max":100}'
rpub $B/controls/oob 150
rpub $B/controls/notenum/meta '{"type":"text","enum":{"a":{"en":"A"},"b":{"en":"B"}}}'
rpub $B/controls/notenum c
rpub $B/controls/disagree/meta '{"type":"switch"}'
rpub $B/controls/disagree/meta/type text
rpub $B/controls/disagree 1
rpub $B/controls/novalue/meta '{"type":"value"}'
rpub $B/controls/notype 5
rpub $B/controls/badfields/meta '{"type":"value","min":"0","readonly":"yes","title":"T","enum":{"1":"one"}}'
rpub $B/controls/badfields 1
rpub $B/controls/badtype/meta '{"type":"gauge"}'
rpub $B/controls/badtype x
rpub $B/controls/baderr/meta '{"type":"value"}'
rpub $B/controls/baderr 1
rpub $B/controls/baderr/meta/error rx
rpub $B/controls/legacymin/meta '{"type":"range","min":0,"max":10,"readonly":false}'
rpub $B/controls/legacymin/meta/min 5
rpub $B/controls/legacymin/meta/readonly 1
rpub $B/controls/legacymin 7
rpub $B/controls/badrgb/meta '{"type":"rgb"}'
rpub $B/controls/badrgb '300;0;0'
rpub $B/controls/hexenum/meta '{"type":"value","enum":{"0x10":{"en":"A"},"two":{"en":"B"}}}'
rpub $B/controls/hexenum 17

# Everything above is retained and acknowledged (QoS 1) before check runs.
# ---- check -----------------------------------------------------------------
out=$("${W[@]}" check --device good 2>&1) && rc=0 || rc=$?
check "check --device good exits 0" [ "$rc" = 0 ]
check "check --device good prints no PROBLEM" [ -z "$out" ]
[ -z "$out" ] || echo "$out" | sed 's/^/# /'

"${W[@]}" check --device broken >"$T_DIR/broken.txt" 2>&1 && rc=0 || rc=$?
check "check --device broken exits non-zero" [ "$rc" != 0 ]
expect_problem() { grep -qF -- "$1" "$T_DIR/broken.txt"; }
for p in \
    "PROBLEM broken/badjson: meta is not valid JSON" \
    "PROBLEM broken/sw2: switch value '2' is not 0 or 1" \
    "PROBLEM broken/oob: value '150' is out of range 0..100" \
    "PROBLEM broken/notenum: value 'c' is not among the enum keys" \
    "PROBLEM broken/disagree: meta/type 'text' disagrees with meta type 'switch'" \
    "PROBLEM broken/novalue: type 'value' without a value" \
    "PROBLEM broken/notype: value without a type" \
    "PROBLEM broken/badfields: meta min is not a number" \
    "PROBLEM broken/badfields: meta readonly is not a boolean" \
    "PROBLEM broken/badfields: meta title is not an object of strings" \
    "PROBLEM broken/badfields: meta enum title of '1' is not an object of strings" \
    "PROBLEM broken/badtype: unknown type 'gauge'" \
    "PROBLEM broken/baderr: meta/error 'rx' has letters other than r, w, p" \
    "PROBLEM broken/legacymin: meta/min '5' disagrees with meta min 0" \
    "PROBLEM broken/legacymin: meta/readonly '1' disagrees with meta readonly false" \
    "PROBLEM broken/badrgb: rgb value '300;0;0' is not R;G;B (0..255 each)" \
    "PROBLEM broken/hexenum: meta enum key 'two' is not a number" \
    "PROBLEM broken/hexenum: value '17' is not among the enum keys"; do
    check "check reports: $p" expect_problem "$p"
done
if [ "$T_FAILS" -gt 0 ]; then sed 's/^/# /' "$T_DIR/broken.txt"; fi
check "check --device nosuch reports it" bash -c '"$@" check --device nosuch | grep -q "PROBLEM nosuch: no such device"' _ "${W[@]}"

# ---- dump ------------------------------------------------------------------
"${W[@]}" dump >"$T_DIR/dump.json"
j() { jq -er "$1" "$T_DIR/dump.json"; }
check "dump is JSON" jq -e .devices.good.controls "$T_DIR/dump.json" >/dev/null
check "dump: device title" [ "$(j '.devices.good.meta.title.ru')" = "Хорошее" ]
check "dump: switch value" [ "$(j '.devices.good.controls.relay.value')" = 0 ]
check "dump: range meta" [ "$(j '.devices.good.controls.level.meta.max')" = 100 ]
check "dump: units" [ "$(j '.devices.good.controls.power.meta.units')" = W ]
check "dump: pushbutton shown without a value" \
    [ "$(j '.devices.good.controls.reset | "\(.shown) \(.value)"')" = "true null" ]
check "dump: legacy type tracked" [ "$(j '.devices.good.controls.temp.legacy.type')" = temperature ]
check "dump: error" [ "$(j '.devices.good.controls.temp.error')" = r ]
check "dump: type without value not shown" [ "$(j '.devices.broken.controls.novalue.shown')" = false ]
check "dump: invalid meta kept raw" [ "$(j '.devices.broken.controls.badjson.meta_invalid')" = '{"type":"switch",' ]
check "dump: value readonly by default" [ "$(j '.devices.good.controls.power.readonly')" = true ]
check "dump --device restricts" [ "$("${W[@]}" dump --device broken | jq -c '.devices | keys')" = '["broken"]' ]

# ---- press -----------------------------------------------------------------
# press_sends DEVICE CONTROL EXPECTED [VALUE]: what press publishes on /on,
# seen by a subscriber that is ready before press runs (its subscription
# is confirmed by a probe message on the same topic).
press_sends() {
    local dev=$1 ctl=$2 want=$3
    shift 3
    local topic=/devices/$dev/controls/$ctl/on got="$T_DIR/on.$dev.$ctl"
    : >"$got"
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$topic" -q 1 -W 60 >"$got" 2>/dev/null &
    local sub=$! ok=0
    if wait_for 20 bash -c 'mosquitto_pub -h 127.0.0.1 -p "$1" -t "$2" -m probe -q 1 && grep -q probe "$3"' \
        _ "$MQTT_PORT" "$topic" "$got" &&
        "${W[@]}" press "$dev" "$ctl" "$@" >/dev/null &&
        wait_for 20 grep -qv '^probe$' "$got"; then
        ok=1
    fi
    kill "$sub" 2>/dev/null || true
    wait "$sub" 2>/dev/null || true
    local sent
    sent=$(grep -v '^probe$' "$got" || true)
    [ "$ok" = 1 ] && [ "$sent" = "$want" ] || { echo "# sent '$sent', want '$want'"; return 1; }
}
check "press pushbutton sends 1" press_sends good reset 1
check "press switch without VALUE toggles 0 -> 1" press_sends good relay 1
check "press switch off sends 0" press_sends good relay 0 off
check "press switch true sends 1" press_sends good relay 1 true
check "press range sends the number" press_sends good level 75 75
check "press value sends the number as the UI prints it" press_sends good setpoint 22.5 22.50
check "press text with enum sends the key" press_sends good mode heat heat
check "press value in exponent form sends it plain" press_sends good setpoint 25 2.5e1
check "press value with a hex enum key" press_sends good speed 16 16
check "press rgb sends R;G;B" press_sends good color '10;20;30' '10;20;30'
check "press range with legacy meta agreeing" press_sends good dim 10 10

refused() {
    local err
    err=$("${W[@]}" -t 5 press "$@" 2>&1 >/dev/null) && return 1
    echo "# $err"
    [ -n "$err" ]
}
check "press refuses a read-only text" refused good label x
check "press refuses a value without readonly:false (read-only by default)" refused good power 1
check "press refuses an alarm" refused good door 0
check "press refuses out of range" refused good level 101
check "press refuses below min" refused good setpoint 4
check "press refuses a text not in the enum" refused good mode cool
check "press refuses a bad switch value" refused good relay maybe
check "press refuses a number not in the enum" refused good speed 2
check "press refuses a bad rgb" refused good color '1;2'
check "press refuses a number that is not one" refused good level abc
check "press times out on a control never shown" refused -t 1 good nosuch 1
check "press times out on a type without a value" refused -t 1 broken novalue 1

# ---- wait ------------------------------------------------------------------
"${W[@]}" -t 20 wait good level 55 >/dev/null 2>&1 &
waiter=$!
rpub $G/controls/level 55
check "wait returns once the value arrives" wait "$waiter"
check "wait returns at once for the current value" "${W[@]}" -t 5 wait good relay 0
check "wait times out with the last value" bash -c \
    '"$@" -t 1 wait good relay 7 2>&1 | grep -q "value is '"'0'"'"' _ "${W[@]}"
"${W[@]}" -t 20 wait good power --error rw >/dev/null 2>&1 &
waiter=$!
rpub $G/controls/power/meta/error rw
check "wait --error returns once meta/error is set" wait "$waiter"
rdel $G/controls/power/meta/error
check "wait --error '' returns once meta/error is cleared" "${W[@]}" -t 20 wait good power --error ''

"${W[@]}" -t 20 wait good power --gone >/dev/null 2>&1 &
waiter=$!
rdel $G/controls/power/meta
rdel $G/controls/power
check "wait --gone returns once value and meta are deleted" wait "$waiter"
check "dump no longer lists the deleted control" \
    [ "$("${W[@]}" dump | jq '.devices.good.controls | has("power")')" = false ]
check "wait --gone times out for a present control" bash -c '! "$@" -t 1 wait good relay --gone 2>/dev/null' _ "${W[@]}"

# ---- garbage ---------------------------------------------------------------
pub -t /devices -m x
pub -t /devices//controls/x -m 1
pub -t /devices/g/controls/ -m 1
pub -r -t /devices/garbage/controls/big -m "$(head -c 20000 /dev/zero | tr '\0' a)"
pub -r -t /devices/garbage/controls/bin/meta -m "$(printf '\x01\x02{')"
check "dump survives garbage" bash -c '"$@" dump | jq -e .devices.good >/dev/null' _ "${W[@]}"
check "dump counts the oversized payload as dropped" bash -c '[ "$("$@" dump | jq .stats.dropped)" -ge 1 ]' _ "${W[@]}"
check "check without --device fails on dropped messages" bash -c '"$@" check 2>/dev/null | grep -q "messages dropped"' _ "${W[@]}"
rdel /devices/garbage/controls/big
rdel /devices/garbage/controls/bin/meta
check "no broker: exit 2" bash -c '"$1" -p "$2" -t 2 dump >/dev/null 2>&1; [ $? = 2 ]' _ "$WBMB_WBUI" "$(free_port)"
check "usage error: exit 2" bash -c '"$1" dump >/dev/null 2>&1; [ $? = 2 ]' _ "$WBMB_WBUI"

t_done
