#!/usr/bin/env bash
# The command line without a broker: --version/--help/usage errors,
# --check-config with valid and broken files, and the offline state tool.
source "$(dirname "$0")/lib.sh"
MQTT_PORT=1 # never contacted: nothing here connects
basic_config "$T_DIR/config.yaml"
B="$WBMB_BIN"

check "--version prints the version" bash -c "'$B' --version | grep -Eq '^wb-mqtt-bridge [0-9]+\.[0-9]+\.[0-9]+$'"
check "--help exits 0 and shows state" bash -c "'$B' --help | grep -q 'state list'"
rc=0; "$B" --bogus >/dev/null 2>&1 || rc=$?
check "unknown option exits 2 (got $rc)" test "$rc" -eq 2
rc=0; "$B" -c "$T_DIR/config.yaml" frobnicate >/dev/null 2>&1 || rc=$?
check "unknown command exits 2 (got $rc)" test "$rc" -eq 2
rc=0; "$B" --log-level loud --check-config >/dev/null 2>&1 || rc=$?
check "bad --log-level exits 2 (got $rc)" test "$rc" -eq 2
rc=0; "$B" -c "$T_DIR/config.yaml" state get >/dev/null 2>&1 || rc=$?
check "state get without KEY exits 2 (got $rc)" test "$rc" -eq 2

check "--check-config accepts a valid file" "$B" -c "$T_DIR/config.yaml" --check-config
check "--check-config does not create the database" test ! -e "$T_DIR/db/state.db"
check "the example config is valid" "$B" -c "$WBMB_SOURCE_DIR/config/example.yaml" --check-config

cat >"$T_DIR/bad.yaml" <<'YAML'
mqtt:
  port: seventy
  prot: 1
devices:
  - id: Bad-Id
    state:
      - topic: a/#/b
        field: x
        type: bool
YAML
rc=0; "$B" -c "$T_DIR/bad.yaml" --check-config 2>"$T_DIR/err.txt" || rc=$?
check "invalid config exits 6 (got $rc)" test "$rc" -eq 6
check "every error line is FILE:LINE:COLUMN: message" \
    bash -c "! grep -Ev '^$T_DIR/bad.yaml:[0-9]+:[0-9]+: .+' '$T_DIR/err.txt'"
check "all errors are reported, not only the first ($(wc -l <"$T_DIR/err.txt"))" \
    test "$(wc -l <"$T_DIR/err.txt")" -ge 4
check "the port error points at line 2" grep -q "bad.yaml:2:" "$T_DIR/err.txt"
# The mirror's own rule (mirror_check_config) runs in --check-config too,
# sorted in file order among the config's own errors.
cat >"$T_DIR/own.yaml" <<'YAML'
devices:
  - id: tv
    state:
      - {topic: /devices/tv/controls/volume, field: v, type: int}
      - {topic: x/y, field: w, type: nope}
YAML
rc=0; "$B" -c "$T_DIR/own.yaml" --check-config 2>"$T_DIR/err3.txt" || rc=$?
check "a state topic inside the bridge's own mirror exits 6 (got $rc)" test "$rc" -eq 6
check "the mirror's error comes first, at 4:9" \
    bash -c "head -n 1 '$T_DIR/err3.txt' | grep -q 'own.yaml:4:9: state topic .*/devices/tv/controls/volume.*wb_mirror: false'"
check "the type error follows it" bash -c "sed -n 2p '$T_DIR/err3.txt' | grep -q 'own.yaml:5:'"
printf 'mqtt: [unclosed\n' >"$T_DIR/syntax.yaml"
rc=0; "$B" -c "$T_DIR/syntax.yaml" --check-config 2>"$T_DIR/err2.txt" || rc=$?
check "YAML syntax error exits 6" test "$rc" -eq 6
check "syntax error has FILE:LINE:COLUMN" grep -Eq "syntax.yaml:[0-9]+:[0-9]+: " "$T_DIR/err2.txt"
rc=0; "$B" -c "$T_DIR/missing.yaml" --check-config 2>/dev/null || rc=$?
check "missing config file exits 6 (got $rc)" test "$rc" -eq 6
rc=0; "$B" -c "$T_DIR/bad.yaml" 2>/dev/null || rc=$?
check "the daemon refuses an invalid config with 6" test "$rc" -eq 6

# The offline state tool.
cat >"$T_DIR/in.json" <<'JSON'
{"device:tv": {"power": true}, "device:counter": {"value": 7}, "scenario:last": {"scenario_id": null, "status": "off"}}
JSON
rc=0; "$B" -c "$T_DIR/config.yaml" state import "$T_DIR/in.json" 2>"$T_DIR/err0.txt" || rc=$?
check "state import without a database exits 1 (got $rc)" test "$rc" -eq 1
check "... says no database at PATH" grep -q "no database at $T_DIR/db/state.db" "$T_DIR/err0.txt"
check "... and creates nothing" test ! -e "$T_DIR/db"
mkdir -p "$T_DIR/db" && : >"$T_DIR/db/state.db" # an empty file is an empty database
check "state import" "$B" -c "$T_DIR/config.yaml" state import "$T_DIR/in.json"
check "sqlite3 .schema shows the contract tables" bash -c "sqlite3 '$T_DIR/db/state.db' .schema | grep -c -E 'CREATE TABLE (IF NOT EXISTS )?\"?(state_store|device_state_snapshots|command_logs|device_connection_logs|devices)\"?[ (]' | grep -q 5"
check "state list shows the imported keys" bash -c "'$B' -c '$T_DIR/config.yaml' state list | jq -e '. == [\"device:counter\", \"device:tv\", \"scenario:last\"]'"
check "state get prints the value" bash -c "'$B' -c '$T_DIR/config.yaml' state get device:counter | jq -e '.value == 7'"
rc=0; "$B" -c "$T_DIR/config.yaml" state get device:nope >/dev/null 2>"$T_DIR/err3.txt" || rc=$?
check "state get of an absent key exits 1 (got $rc)" test "$rc" -eq 1
check "absent key message on stderr" grep -q "not found" "$T_DIR/err3.txt"
"$B" -c "$T_DIR/config.yaml" state export >"$T_DIR/out.json"
check "state export to stdout round-trips" bash -c "jq -S . '$T_DIR/in.json' >'$T_DIR/a'; jq -S . '$T_DIR/out.json' >'$T_DIR/b'; cmp -s '$T_DIR/a' '$T_DIR/b'"
check "state export to a file" "$B" -c "$T_DIR/config.yaml" state export "$T_DIR/out2.json"
check "exported file equals stdout export" bash -c "jq -S . '$T_DIR/out2.json' | cmp -s - '$T_DIR/b'"
echo '{"device:x": {"a": 1}, "device:y": 5}' >"$T_DIR/bad_in.json"
rc=0; "$B" -c "$T_DIR/config.yaml" state import "$T_DIR/bad_in.json" 2>/dev/null || rc=$?
check "import of a non-object value fails (got $rc)" test "$rc" -eq 1
check "a failed import writes nothing" bash -c "! '$B' -c '$T_DIR/config.yaml' state get device:x >/dev/null 2>&1"
echo '{"device:x": ' >"$T_DIR/trunc.json"
rc=0; "$B" -c "$T_DIR/config.yaml" state import "$T_DIR/trunc.json" 2>/dev/null || rc=$?
check "import of malformed JSON fails (got $rc)" test "$rc" -eq 1
check "import is one transaction (user_version and integrity)" \
    test "$(sql "$T_DIR/db/state.db" 'pragma integrity_check')" = ok
t_done
