#!/usr/bin/env bash
# `config to-json` / `config from-json` (the Wiren Board config editor's
# converters): a round trip of config/example.yaml YAML -> JSON -> YAML ->
# JSON gives the same JSON and a YAML the loader reads the same; invalid
# input exits 6 with <stdin>:LINE:COLUMN lines and prints nothing on stdout.
source "$(dirname "$0")/lib.sh"

EX="$WBMB_SOURCE_DIR/config/example.yaml"
B="$WBMB_BIN"

check "to-json of example.yaml" bash -c "'$B' config to-json <'$EX' >'$T_DIR/a.json'"
check "to-json output is a JSON object" jq -e 'type == "object"' "$T_DIR/a.json"
check "from-json of that JSON" bash -c "'$B' config from-json <'$T_DIR/a.json' >'$T_DIR/b.yaml'"
check "to-json of the produced YAML" bash -c "'$B' config to-json <'$T_DIR/b.yaml' >'$T_DIR/c.json'"
check "the two JSONs are equal (jq -S)" \
    diff <(jq -S . "$T_DIR/a.json") <(jq -S . "$T_DIR/c.json")
check "produced YAML passes --check-config" "$B" -c "$T_DIR/b.yaml" --check-config
check "same --check-config summary as the original" test \
    "$("$B" -c "$EX" --check-config | sed 's/^[^:]*: //')" = \
    "$("$B" -c "$T_DIR/b.yaml" --check-config | sed 's/^[^:]*: //')"
check "types kept: port is a number" jq -e '.mqtt.port == 1883' "$T_DIR/a.json"
check "types kept: wb_mirror-free device, set power is a boolean" \
    jq -e '.devices[0].actions.power_on.set.power == true' "$T_DIR/a.json"
check "types kept: quoted payload \"1\" stays a string" \
    jq -e '.devices[0].actions.power_on.payload == "1"' "$T_DIR/a.json"
check "YAML 1.1 boolean words are quoted in the YAML (\"on\" action name)" \
    grep -qE '^ *"on":' "$T_DIR/b.yaml"
check "a string that looks like a number is quoted in the YAML" \
    grep -qE '^ *payload: "1"$' "$T_DIR/b.yaml"
check "JSON object payload survives" \
    jq -e '.devices[2].actions.on.payload == "{\"state\": \"ON\"}"' "$T_DIR/c.json"

# A second round trip is a fixed point: YAML out == YAML out.
"$B" config from-json <"$T_DIR/c.json" >"$T_DIR/d.yaml"
check "from-json is stable" cmp -s "$T_DIR/b.yaml" "$T_DIR/d.yaml"

# An empty config: {} both ways, and it is valid (every default).
check "empty YAML gives {}" test "$(printf '# nothing\n' | "$B" config to-json | jq -c .)" = "{}"
check "{} gives a valid YAML" bash -c "echo '{}' | '$B' config from-json >'$T_DIR/empty.yaml'"
check "... which loads" "$B" -c "$T_DIR/empty.yaml" --check-config

# Invalid YAML (syntax) and invalid config (semantics): exit 6, positions.
set +e
printf 'mqtt:\n  port: [1\n' | "$B" config to-json >"$T_DIR/out" 2>"$T_DIR/err"; rc=$?
set -e
check "to-json: syntax error exits 6" test "$rc" -eq 6
check "to-json: error as <stdin>:L:C:" grep -qE '^<stdin>:[0-9]+:[0-9]+: ' "$T_DIR/err"
check "to-json: nothing on stdout" test ! -s "$T_DIR/out"
set +e
printf 'mqtt:\n  port: 70000\n  bogus: 1\n' | "$B" config to-json >"$T_DIR/out" 2>"$T_DIR/err"; rc=$?
set -e
check "to-json: invalid config exits 6" test "$rc" -eq 6
check "to-json: every error reported (2 lines)" test "$(grep -cE '^<stdin>:[23]:[0-9]+: ' "$T_DIR/err")" -eq 2
check "to-json: nothing on stdout for an invalid config" test ! -s "$T_DIR/out"

set +e
printf '{"mqtt": {"port": 1883,}\n' | "$B" config from-json >"$T_DIR/out" 2>"$T_DIR/err"; rc=$?
set -e
check "from-json: malformed JSON exits 6" test "$rc" -eq 6
check "from-json: JSON error as <stdin>:L:C:" grep -qE '^<stdin>:1:[0-9]+: ' "$T_DIR/err"
set +e
echo '{"mqtt": {"port": 70000}, "devices": [{"id": "BAD ID"}]}' |
    "$B" config from-json >"$T_DIR/out" 2>"$T_DIR/err"; rc=$?
set -e
check "from-json: invalid config exits 6" test "$rc" -eq 6
check "from-json: an out-of-range port is reported" grep -q 'port' "$T_DIR/err"
check "from-json: a bad id is reported" grep -qi 'id' "$T_DIR/err"
check "from-json: nothing on stdout" test ! -s "$T_DIR/out"
set +e
echo '[1, 2]' | "$B" config from-json >/dev/null 2>"$T_DIR/err"; rc=$?
set -e
check "from-json: a non-object exits 6" test "$rc" -eq 6

set +e
"$B" config >/dev/null 2>&1; rc1=$?
"$B" config to-yaml >/dev/null 2>&1; rc2=$?
set -e
check "config without a valid subcommand is a usage error (2)" test "$rc1" -eq 2 -a "$rc2" -eq 2
check "--help mentions config to-json" bash -c "'$B' --help | grep -q 'config to-json'"
# The config editor's schema describes what to-json produces.
SCHEMA="$WBMB_SOURCE_DIR/config/wb-mqtt-bridge.schema.json"
check "schema: configFile for wb-mqtt-confed" jq -e '.configFile == {"path": "/etc/wb-mqtt-bridge.yaml",
    "service": "wb-mqtt-bridge", "toJSON": ["wb-mqtt-bridge", "config", "to-json"],
    "fromJSON": ["wb-mqtt-bridge", "config", "from-json"]}' "$SCHEMA"
if python3 -c 'import jsonschema' 2>/dev/null; then
    validate() {
        python3 - "$SCHEMA" "$1" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft4Validator.check_schema(schema)
jsonschema.Draft4Validator(schema).validate(json.load(open(sys.argv[2])))
PY
    }
    check "schema: example.yaml (as JSON) validates" validate "$T_DIR/a.json"
    "$B" config to-json <"$WBMB_SOURCE_DIR/scripts/package/wb-mqtt-bridge.yaml" >"$T_DIR/pkg.json"
    check "schema: the packaged config validates" validate "$T_DIR/pkg.json"
    echo '{"mqtt": {"port": 0, "password": "x"}}' >"$T_DIR/bad.json"
    check "schema: rejects an inline password and port 0" bash -c "! validate_bad=1 python3 -c '
import json, jsonschema
jsonschema.validate(json.load(open(\"$T_DIR/bad.json\")), json.load(open(\"$SCHEMA\")))' 2>/dev/null"
else
    t_log "skip: python3 jsonschema not installed (schema validation checks)"
fi
t_done
