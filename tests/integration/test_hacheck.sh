#!/usr/bin/env bash
# test_hacheck.sh - the Home Assistant test consumer (tests/tools/hacheck.py)
# on its own, without the bridge: hand-written retained discovery configs
# published with mosquitto_pub to a real mosquitto. Prefix "homeassistant"
# holds a good device with one entity of every platform (full option names)
# and a second one written with Home Assistant's abbreviations; prefix "bad"
# one device per deliberate mistake. check, dump, command and wait are run
# against them as the bridge's tests will.
. "$(dirname "$0")/lib.sh"

: "${WBMB_HACHECK:?WBMB_HACHECK must point at tests/tools/hacheck.py}"
start_broker

H=(/usr/bin/python3 "$WBMB_HACHECK" -p "$MQTT_PORT")
# rpub TOPIC PAYLOAD: a retained QoS 1 message; rdel TOPIC: deletes it.
rpub() { pub -r -t "$1" -m "$2"; }
rdel() { pub -r -t "$1" -n; }

# ---- the good devices ------------------------------------------------------
AV='"availability":[{"topic":"b/bridge/availability"},{"topic":"b/good/availability"}],"availability_mode":"all"'
ST='"state_topic":"b/good/state"'
rpub homeassistant/device/node/good/config "$(
    cat <<JSON
{"dev":{"identifiers":["node_good"],"name":"Good","manufacturer":"hand"},
 "o":{"name":"wb-mqtt-bridge","sw_version":"1.0","support_url":"https://example.invalid"},
 "cmps":{
  "temp":{"p":"sensor","unique_id":"node_good_temp","name":"Temperature",$ST,
          "value_template":"{{ value_json.get('temp') }}","unit_of_measurement":"°C",
          "device_class":"temperature","state_class":"measurement",$AV,
          "json_attributes_topic":"b/good/state"},
  "label":{"p":"sensor","unique_id":"node_good_label",$ST,"value_template":"{{ value_json.get('label') }}",
           "entity_category":"diagnostic","icon":"mdi:tag",$AV},
  "missing":{"p":"sensor","unique_id":"node_good_missing",$ST,"unit_of_measurement":"W",
             "value_template":"{{ value_json.get('nosuch') }}",$AV},
  "energy":{"p":"sensor","unique_id":"node_good_energy",$ST,"value_template":"{{ value_json.get('energy') }}",
            "unit_of_measurement":"kWh","device_class":"energy","state_class":"total_increasing",$AV},
  "door":{"p":"binary_sensor","unique_id":"node_good_door",$ST,"value_template":"{{ value_json.get('door') }}",
          "payload_on":"True","payload_off":"False","device_class":"door",$AV},
  "relay":{"p":"switch","unique_id":"node_good_relay",$ST,"value_template":"{{ value_json.get('relay') }}",
           "command_topic":"b/good/relay/set","payload_on":"ON","payload_off":"OFF",
           "state_on":"True","state_off":"False",$AV},
  "level":{"p":"number","unique_id":"node_good_level",$ST,"value_template":"{{ value_json.get('level') }}",
           "command_topic":"b/good/set_level/set","min":0,"max":100,"step":1,"mode":"box",$AV},
  "setpoint":{"p":"number","unique_id":"node_good_setpoint","command_topic":"b/good/setpoint/set",
              "command_template":"{\"value\": {{ value }}}","min":5,"max":30,"step":0.5,$AV},
  "input":{"p":"select","unique_id":"node_good_input",$ST,"value_template":"{{ value_json.get('input') }}",
           "command_topic":"b/good/set_input/set","options":["hdmi1","hdmi2","optical"],$AV},
  "reboot":{"p":"button","unique_id":"node_good_reboot","command_topic":"b/good/reboot/set",
            "payload_press":"PRESS","device_class":"restart","entity_category":"diagnostic",$AV},
  "msg":{"p":"text","unique_id":"node_good_msg",$ST,"value_template":"{{ value_json.get('msg') }}",
         "command_topic":"b/good/say/set","max":255,$AV}
 }}
JSON
)"
rpub b/good/state '{"temp":21.5,"label":"hello","energy":1.25,"door":true,"relay":false,"level":40,"input":"hdmi2","msg":"hi there"}'
rpub b/bridge/availability online
rpub b/good/availability online
# The same kinds written with Home Assistant's abbreviations, a "~" base topic,
# shared options at the top level and one availability topic (mode latest).
rpub homeassistant/device/node/abbr/config '{"dev":{"ids":"node_abbr","name":"Abbr"},"o":{"name":"hand","sw":"2"},
 "~":"b/abbr","stat_t":"~/state","avty":[{"t":"~/availability","pl_avail":"up","pl_not_avail":"down"}],
 "cmps":{"t":{"p":"sensor","uniq_id":"node_abbr_t","val_tpl":"{{ value_json.t | float(0) * 2 }}","unit_of_meas":"W",
              "stat_cla":"measurement","dev_cla":"power"},
         "sw":{"p":"switch","uniq_id":"node_abbr_sw","cmd_t":"~/sw/set","val_tpl":"{{ value_json.sw }}",
               "pl_on":"1","pl_off":"0"},
         "b":{"p":"button","uniq_id":"node_abbr_b","cmd_t":"~/b/set","pl_prs":"GO","ent_cat":"config"},
         "s":{"p":"select","uniq_id":"node_abbr_s","cmd_t":"~/s/set","ops":["a","b"],"val_tpl":"{{ value_json.s }}"}}}'
rpub b/abbr/state '{"t":"2.5","sw":"1","s":"b"}'
rpub b/abbr/availability up

# Everything above is retained and acknowledged (QoS 1) before check runs.
# ---- check on the good devices ---------------------------------------------
out=$("${H[@]}" check --expect-entities 15 2>&1) && rc=0 || rc=$?
check "check on the good devices exits 0" [ "$rc" = 0 ]
check "check on the good devices prints no PROBLEM" [ -z "$out" ]
[ -z "$out" ] || echo "$out" | sed 's/^/# /'
check "check --expect-entities with a wrong count fails" bash -c \
    '"$@" check --expect-entities 3 | grep -q "PROBLEM: 15 entities, expected 3"' _ "${H[@]}"

# ---- dump --------------------------------------------------------------------
"${H[@]}" dump >"$T_DIR/dump.json"
j() { jq -er "$1" "$T_DIR/dump.json"; }
E=.devices.good.entities
check "dump is JSON with both devices" [ "$(j '.devices | keys | join(",")')" = abbr,good ]
check "dump: the topic" [ "$(j .devices.good.topic)" = homeassistant/device/node/good/config ]
check "dump: config as received, origin kept" [ "$(j .devices.good.config.origin.support_url)" = https://example.invalid ]
check "dump: sensor state rendered" [ "$(j "$E.node_good_temp.state")" = 21.5 ]
check "dump: sensor name" [ "$(j "$E.node_good_temp.name")" = Temperature ]
check "dump: raw state payload" [ "$(j "$E.node_good_temp.raw_state_payload | fromjson | .temp")" = 21.5 ]
check "dump: json attributes" [ "$(j "$E.node_good_temp.attributes.label")" = hello ]
check "dump: text sensor" [ "$(j "$E.node_good_label.state")" = hello ]
check "dump: a missing field is unknown (null)" [ "$(j "$E.node_good_missing.state | tostring")" = null ]
check "dump: binary_sensor True -> on" [ "$(j "$E.node_good_door.state")" = on ]
check "dump: switch False -> off" [ "$(j "$E.node_good_relay.state")" = off ]
check "dump: number" [ "$(j "$E.node_good_level.state")" = 40 ]
check "dump: optimistic number has no state" [ "$(j "$E.node_good_setpoint.state | tostring")" = null ]
check "dump: select" [ "$(j "$E.node_good_input.state")" = hdmi2 ]
check "dump: text" [ "$(j "$E.node_good_msg.state")" = "hi there" ]
check "dump: button has no state" [ "$(j "$E.node_good_reboot | [.platform, (.state|tostring)] | join(\" \")")" = "button null" ]
check "dump: every good entity available" [ "$(j "[${E}[] | .available] | all")" = true ]
A=.devices.abbr
check "dump: abbreviations expanded" [ "$(j "$A.config.components.t.unit_of_measurement")" = W ]
check "dump: ~ expanded in shared options" [ "$(j "$A.config.state_topic")" = b/abbr/state ]
check "dump: shared state topic used" [ "$(j "$A.entities.node_abbr_t.state")" = 5.0 ]
check "dump: abbreviated switch pl_on 1 -> on" [ "$(j "$A.entities.node_abbr_sw.state")" = on ]
check "dump: abbreviated select" [ "$(j "$A.entities.node_abbr_s.state")" = b ]
check "dump: custom availability payload" [ "$(j "$A.entities.node_abbr_t.available")" = true ]
check "dump: no problems" [ "$(j '.problems | length')" = 0 ]

# Availability: mode all needs both topics; mode latest follows the last one.
rpub b/good/availability offline
rpub b/abbr/availability down
"${H[@]}" dump >"$T_DIR/dump2.json"
check "dump: device offline -> unavailable (mode all)" \
    [ "$(jq -r "$E.node_good_temp.available" "$T_DIR/dump2.json")" = false ]
check "dump: abbr offline -> unavailable (custom payload)" \
    [ "$(jq -r "$A.entities.node_abbr_t.available" "$T_DIR/dump2.json")" = false ]
rpub b/good/availability online
rpub b/abbr/availability up

# ---- the bad devices (prefix "bad") ------------------------------------------
B=(/usr/bin/python3 "$WBMB_HACHECK" -p "$MQTT_PORT" --prefix bad)
BAV='"availability":[{"topic":"b/bad/availability"}]'
bdev() { # bdev OBJECT_ID COMPONENTS_JSON [DEV_JSON] [ORIGIN_JSON]
    local dev="{\"ids\":[\"$1\"],\"name\":\"$1\"}" origin='{"name":"hand"}'
    [ $# -lt 3 ] || dev=$3
    [ $# -lt 4 ] || origin=$4
    rpub "bad/device/node/$1/config" "{\"dev\":$dev,\"o\":$origin,\"cmps\":$2}"
}
bdev nouid "{\"a\":{\"p\":\"sensor\",\"state_topic\":\"b/bad/state\",$BAV}}"
bdev dup1 "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"twice\",\"state_topic\":\"b/bad/state\",$BAV}}"
bdev dup2 "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"twice\",\"state_topic\":\"b/bad/state\",$BAV}}"
bdev nocmd "{\"a\":{\"p\":\"switch\",\"unique_id\":\"nocmd_a\",\"state_topic\":\"b/bad/state\",$BAV}}"
bdev badtpl "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"badtpl_a\",\"state_topic\":\"b/bad/state\",\"value_template\":\"{{ value_json.get( }}\",$BAV},
              \"b\":{\"p\":\"sensor\",\"unique_id\":\"badtpl_b\",\"state_topic\":\"b/bad/text\",\"value_template\":\"{{ value_json.get('x') }}\",$BAV}}"
bdev notopt "{\"a\":{\"p\":\"select\",\"unique_id\":\"notopt_a\",\"state_topic\":\"b/bad/state\",\"command_topic\":\"b/bad/set\",\"options\":[\"x\",\"y\"],\"value_template\":\"{{ value_json.mode }}\",$BAV}}"
bdev noavty '{"a":{"p":"sensor","unique_id":"noavty_a","state_topic":"b/bad/state"}}'
bdev nonnum "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"nonnum_a\",\"state_topic\":\"b/bad/state\",\"unit_of_measurement\":\"W\",\"value_template\":\"{{ value_json.mode }}\",$BAV}}"
bdev binstate "{\"a\":{\"p\":\"binary_sensor\",\"unique_id\":\"binstate_a\",\"state_topic\":\"b/bad/state\",\"value_template\":\"{{ value_json.mode }}\",$BAV}}"
bdev mode2 '{"a":{"p":"sensor","unique_id":"mode2_a","state_topic":"b/bad/state","availability":[{"topic":"b/x"},{"topic":"b/y"}]}}'
bdev classes "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"classes_a\",\"state_topic\":\"b/bad/state\",\"device_class\":\"warp\",\"state_class\":\"sometimes\",\"entity_category\":\"misc\",$BAV},
               \"e\":{\"p\":\"sensor\",\"unique_id\":\"classes_e\",\"state_topic\":\"b/bad/state\",\"device_class\":\"energy\",\"state_class\":\"measurement\",$BAV}}"
bdev numrange "{\"a\":{\"p\":\"number\",\"unique_id\":\"numrange_a\",\"command_topic\":\"b/bad/set\",\"min\":10,\"max\":5,\"step\":0,$BAV}}"
bdev wild "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"wild_a\",\"state_topic\":\"b/bad/+\",$BAV}}"
bdev plat "{\"a\":{\"p\":\"light\",\"unique_id\":\"plat_a\",\"command_topic\":\"b/bad/set\",$BAV}}"
bdev nodev "{\"a\":{\"p\":\"sensor\",\"unique_id\":\"nodev_a\",\"state_topic\":\"b/bad/state\",$BAV}}" '{"name":"x"}' '{"sw":"1"}'
bdev nocmps '{}'
bdev noops "{\"a\":{\"p\":\"select\",\"unique_id\":\"noops_a\",\"command_topic\":\"b/bad/set\",$BAV}}"
rpub 'bad/device/node/bad.id/config' "{\"dev\":{\"ids\":[\"x\"]},\"o\":{\"name\":\"hand\"},\"cmps\":{\"a\":{\"p\":\"button\",\"unique_id\":\"badid_a\",\"command_topic\":\"b/bad/set\",$BAV}}}"
rpub bad/device/node/notjson/config '{"dev":'
rpub bad/device/other/nouid/config "{\"dev\":{\"ids\":[\"o\"]},\"o\":{\"name\":\"hand\"},\"cmps\":{\"a\":{\"p\":\"button\",\"unique_id\":\"other_a\",\"command_topic\":\"b/bad/set\",$BAV}}}"
rpub b/bad/state '{"mode":"z"}'
rpub b/bad/text 'not json'
rpub b/bad/availability online

"${B[@]}" check >"$T_DIR/bad.txt" 2>&1 && rc=0 || rc=$?
check "check on the bad devices exits 1" [ "$rc" = 1 ]
expect_problem() { grep -qF -- "$1" "$T_DIR/bad.txt"; }
for p in \
    "PROBLEM: nouid/a: no unique_id" \
    "PROBLEM: dup2/a: unique_id 'twice' is also used by dup1/a" \
    "PROBLEM: nocmd/a: switch without command_topic" \
    "PROBLEM: badtpl/a: value_template '{{ value_json.get( }}' does not compile" \
    "PROBLEM: badtpl/b: value_template: template \"{{ value_json.get('x') }}\" failed on 'not json'" \
    "PROBLEM: notopt/a: select state 'z' is not one of the options ['x', 'y']" \
    "PROBLEM: noavty/a: availability missing" \
    "PROBLEM: nonnum/a: sensor state 'z' is not numeric" \
    "PROBLEM: binstate/a: binary_sensor state 'z' matches neither payload_on 'ON' nor payload_off 'OFF'" \
    "PROBLEM: mode2/a: 2 availability topics with availability_mode 'latest', not 'all'" \
    "PROBLEM: classes/a: device_class 'warp' is not a sensor device class" \
    "PROBLEM: classes/a: state_class 'sometimes' is not one of" \
    "PROBLEM: classes/a: entity_category 'misc' is not config or diagnostic" \
    "PROBLEM: classes/e: device_class 'energy' needs state_class total or total_increasing, got 'measurement'" \
    "PROBLEM: numrange/a: number min 10 is not below max 5" \
    "PROBLEM: numrange/a: number step 0 is not above 0" \
    "PROBLEM: wild/a: state_topic 'b/bad/+' is not a valid MQTT topic" \
    "PROBLEM: plat/a: platform 'light' is not one of" \
    "PROBLEM: nodev: device identifiers missing or empty" \
    "PROBLEM: nodev: origin has no name" \
    "PROBLEM: nocmps: components ('cmps') missing or empty" \
    "PROBLEM: noops/a: select without options" \
    "PROBLEM: bad/device/node/bad.id/config: object_id 'bad.id' is not [a-zA-Z0-9_-]+" \
    "PROBLEM: bad/device/node/notjson/config: payload is not JSON" \
    "PROBLEM: bad/device/other/nouid/config: object_id 'nouid' is also announced at bad/device/node/nouid/config"; do
    check "check reports: $p" expect_problem "$p"
done
if [ "$T_FAILS" -gt 0 ]; then sed 's/^/# /' "$T_DIR/bad.txt"; fi
check "dump lists the problems too" bash -c '"$@" dump | jq -e ".problems | length > 20" >/dev/null' _ "${B[@]}"

# ---- command -----------------------------------------------------------------
# sends UNIQUE_ID EXPECTED_TOPIC EXPECTED_PAYLOAD [VALUE]: what command
# publishes, seen by a mosquitto_sub -C 1 that is ready before it runs
# (its subscription is confirmed by a retained probe it must receive first).
sends() {
    local uid=$1 topic=$2 want=$3 got="$T_DIR/cmd.$1"
    shift 3
    : >"$got"
    rpub "$topic/probe" probe
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "$topic" -t "$topic/probe" -C 2 -W 60 >"$got" 2>/dev/null &
    local sub=$! ok=0
    if wait_for 20 grep -q probe "$got" && "${H[@]}" command "$uid" "$@" >/dev/null &&
        wait "$sub"; then
        ok=1
    fi
    kill "$sub" 2>/dev/null || true
    wait "$sub" 2>/dev/null || true
    rdel "$topic/probe"
    local sent
    sent=$(grep -v '^probe$' "$got" || true)
    [ "$ok" = 1 ] && [ "$sent" = "$want" ] || { echo "# sent '$sent', want '$want'"; return 1; }
}
check "command switch on sends payload_on" sends node_good_relay b/good/relay/set ON on
check "command switch off sends payload_off" sends node_good_relay b/good/relay/set OFF off
check "command abbreviated switch sends pl_on" sends node_abbr_sw b/abbr/sw/set 1 on
check "command button sends PRESS" sends node_good_reboot b/good/reboot/set PRESS
check "command button sends its pl_prs" sends node_abbr_b b/abbr/b/set GO
check "command number with an integral step sends an int" sends node_good_level b/good/set_level/set 40 40.0
check "command number honours command_template" sends node_good_setpoint b/good/setpoint/set '{"value": 20.5}' 20.5
check "command select sends the option" sends node_good_input b/good/set_input/set optical optical
check "command text sends the text" sends node_good_msg b/good/say/set 'hello world' 'hello world'
refused() { ! "${H[@]}" -t 5 command "$@" >/dev/null 2>&1; }
check "command refuses a select value not in options" refused node_good_input tape
check "command refuses a number out of range" refused node_good_level 101
check "command refuses a bad switch value" refused node_good_relay maybe
check "command refuses an unknown entity" refused nosuch 1
check "command refuses a sensor" refused node_good_temp 1

# ---- wait ----------------------------------------------------------------------
# waiter ARGS...: starts "hacheck -t 20 wait ARGS" in the background (pid in
# $waiter) and returns once it has read everything and says it is waiting,
# so the change made next is one it sees happen.
waiter() {
    local err="$T_DIR/waiter.$RANDOM"
    "${H[@]}" -t 20 wait "$@" >/dev/null 2>"$err" &
    waiter=$!
    wait_for 20 grep -q "hacheck: waiting for" "$err" || fail "wait $* did not start waiting"
}
waiter node_good_temp 23.0
rpub b/good/state '{"temp":23.0,"label":"hello","energy":1.25,"door":false,"relay":true,"level":40,"input":"hdmi2","msg":"hi there"}'
check "wait returns once the state changes" wait "$waiter"
check "wait returns at once for the current state" "${H[@]}" -t 5 wait node_good_relay on
check "wait times out (exit 1) for a state that never comes" bash -c \
    '"$@" -t 1 wait node_good_temp 99 2>&1; [ $? = 1 ]' _ "${H[@]}"
check "wait reports the state it last saw" bash -c \
    '"$@" -t 1 wait node_good_temp 99 2>&1 | grep -q "state is '"'23.0'"'"' _ "${H[@]}"
waiter node_good_temp --unavailable
rpub b/bridge/availability offline
check "wait --unavailable returns once the bridge is offline" wait "$waiter"
waiter node_good_temp --available
rpub b/bridge/availability online
check "wait --available returns once it is back" wait "$waiter"
check "wait --gone times out for a present entity" bash -c '"$@" -t 1 wait node_good_temp --gone 2>/dev/null; [ $? = 1 ]' _ "${H[@]}"

# ---- removal -------------------------------------------------------------------
# A component that is only {"p": ...} removes it; the others stay.
waiter node_abbr_t --gone
rpub homeassistant/device/node/abbr/config '{"dev":{"ids":"node_abbr","name":"Abbr"},"o":{"name":"hand"},
 "~":"b/abbr","stat_t":"~/state","avty":[{"t":"~/availability","pl_avail":"up","pl_not_avail":"down"}],
 "cmps":{"t":{"p":"sensor"},
         "sw":{"p":"switch","uniq_id":"node_abbr_sw","cmd_t":"~/sw/set","val_tpl":"{{ value_json.sw }}","pl_on":"1","pl_off":"0"},
         "b":{"p":"button","uniq_id":"node_abbr_b","cmd_t":"~/b/set","pl_prs":"GO","ent_cat":"config"},
         "s":{"p":"select","uniq_id":"node_abbr_s","cmd_t":"~/s/set","ops":["a","b"],"val_tpl":"{{ value_json.s }}"}}}'
check "wait --gone returns once the component is removed" wait "$waiter"
"${H[@]}" dump >"$T_DIR/dump3.json"
check "dump: {\"p\": \"sensor\"} is not an entity" \
    [ "$(jq -r '.devices.abbr.entities | keys | join(",")' "$T_DIR/dump3.json")" = node_abbr_b,node_abbr_s,node_abbr_sw ]
check "check still passes with a removed component" "${H[@]}" check --expect-entities 14
# (a retained config seen fresh holds the removal itself, not the old entity)
check "dump: the removed component is counted as removed" \
    [ "$(jq -r '[.removed[] | select(.kind == "component") | .component] | join(",")' "$T_DIR/dump3.json")" = t ]
# An empty retained config removes the whole device.
waiter node_abbr_sw --gone
rdel homeassistant/device/node/abbr/config
check "wait --gone returns once the device config is emptied" wait "$waiter"
check "dump: the emptied device is gone" [ "$("${H[@]}" dump | jq -r '.devices | keys | join(",")')" = good ]
check "wait --gone for a device object_id" "${H[@]}" -t 5 wait abbr --gone

# The removal seen live: a watcher that had the device records what went.
live_removal() {
    PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 - "$WBMB_HACHECK" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("hacheck", sys.argv[1])
h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)
m = h.Model("homeassistant")
t = "homeassistant/device/n/d/config"
m.on_message(t, b'{"dev":{"ids":["d"]},"o":{"name":"x"},"cmps":{"a":{"p":"sensor","uniq_id":"u_a","stat_t":"s"},"b":{"p":"sensor","uniq_id":"u_b","stat_t":"s"}}}')
m.on_message(t, b'{"dev":{"ids":["d"]},"o":{"name":"x"},"cmps":{"a":{"p":"sensor"},"b":{"p":"sensor","uniq_id":"u_b","stat_t":"s"}}}')
assert m.removed == [{"kind": "component", "object_id": "d", "topic": t, "component": "a", "platform": "sensor", "unique_id": "u_a"}], m.removed
snap, _ = m.snapshot()
assert list(snap["devices"]["d"]["entities"]) == ["u_b"], snap
m.on_message(t, b"")
assert m.removed[-1] == {"kind": "device", "object_id": "d", "topic": t, "unique_ids": ["u_b"]}, m.removed
assert m.snapshot()[0]["devices"] == {}
# a component that vanishes without {"p": ...} stays, with a problem
m.on_message(t, b'{"dev":{"ids":["d"]},"o":{"name":"x"},"cmps":{"a":{"p":"sensor","uniq_id":"u_a","stat_t":"s"},"b":{"p":"sensor","uniq_id":"u_b","stat_t":"s"}}}')
m.on_message(t, b'{"dev":{"ids":["d"]},"o":{"name":"x"},"cmps":{"b":{"p":"sensor","uniq_id":"u_b","stat_t":"s"}}}')
snap, probs = m.snapshot()
assert "u_a" in snap["devices"]["d"]["entities"], snap
assert any("vanished" in p for p in probs), probs
PY
}
check "removal seen live is listed in removed; a vanished component stays, with a problem" live_removal

# ---- birth ---------------------------------------------------------------------
: >"$T_DIR/birth.txt"
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t homeassistant/status -t hacheck/probe -C 2 -W 60 >"$T_DIR/birth.txt" 2>/dev/null &
sub=$!
rpub hacheck/probe probe
wait_for 20 grep -q probe "$T_DIR/birth.txt" && "${H[@]}" birth && wait "$sub" && rc=0 || rc=$?
rdel hacheck/probe
check "birth publishes online on homeassistant/status" [ "$rc" = 0 ] && [ "$(tail -n 1 "$T_DIR/birth.txt")" = online ]
check "birth is not retained" [ -z "$(retained_value homeassistant/status)" ]

# ---- exit codes ----------------------------------------------------------------
check "no broker: exit 2" bash -c '/usr/bin/python3 "$1" -p "$2" -t 2 dump >/dev/null 2>&1; [ $? = 2 ]' _ "$WBMB_HACHECK" "$(free_port)"
check "usage error: exit 2" bash -c '/usr/bin/python3 "$1" dump >/dev/null 2>&1; [ $? = 2 ]' _ "$WBMB_HACHECK"
check "wait without a state: exit 2" bash -c '"$@" wait x >/dev/null 2>&1; [ $? = 2 ]' _ "${H[@]}"

t_done
