#!/usr/bin/env bash
# The database beside other programs (issue 15): one daemon per database
# (a second one exits 1 "database in use by PID N" before it connects), the
# state tool beside a running daemon (reads work with a quiet stderr, import
# refuses, never creates a database, lists a read-only file), and the seed-000
# design's own write through the sqlite3 shell, restored at the next start,
# with a warning naming the key of a row that is not a JSON object.
source "$(dirname "$0")/lib.sh"
start_broker
basic_config "$T_DIR/config.yaml"
B="$WBMB_BIN"
CFG=$T_DIR/config.yaml
DB=$T_DIR/db/state.db

start_bridge "$CFG"
FIRST=$BRIDGE_PID
check "the first daemon connects" wait_for 20 log_has "connected to "
check "the lock file beside the database names its PID" \
    wait_for 10 bash -c "[ \"\$(cat '$DB.lock' 2>/dev/null)\" = '$FIRST' ]"

# A second daemon on the same config (same db_path, same client id).
rc=0; timeout 20 "$B" -c "$CFG" >"$T_DIR/second.log" 2>&1 || rc=$?
check "a second daemon on the same database exits 1 (got $rc)" test "$rc" -eq 1
check "... saying database in use by PID $FIRST" grep -q "database in use by PID $FIRST" "$T_DIR/second.log"
check "... before it connects to the broker" bash -c "! grep -qiE 'connect(ed|ing) to' '$T_DIR/second.log'"
check "the first one keeps its connection" bash -c "! grep -q 'disconnected' '$T_DIR/bridge.log'"

# Reads beside the running daemon.
pub -t /devices/relay/controls/K1 -m 1
check "state get sees the daemon's commit" wait_for 20 field_is device:tv power true
"$B" -c "$CFG" state get device:tv >"$T_DIR/get.out" 2>"$T_DIR/get.err"
check "state get prints only JSON on stdout" jq -e '.power == true' "$T_DIR/get.out"
check "state get keeps stderr quiet" test ! -s "$T_DIR/get.err"
check "state list works beside the daemon" bash -c "'$B' -c '$CFG' state list 2>/dev/null | jq -e 'index(\"device:tv\") != null'"
check "state export works beside the daemon" bash -c "'$B' -c '$CFG' state export 2>/dev/null | jq -e '.\"device:tv\".power == true'"

# Import beside the running daemon: refused, nothing written.
echo '{"device:tv": {"power": false}}' >"$T_DIR/in.json"
rc=0; "$B" -c "$CFG" state import "$T_DIR/in.json" 2>"$T_DIR/imp.err" || rc=$?
check "state import beside the daemon exits 1 (got $rc)" test "$rc" -eq 1
check "... with a clear message naming the daemon" grep -q "state import refused: the daemon (PID $FIRST) is running" "$T_DIR/imp.err"
check "... and writes nothing" field_is device:tv power true

# Another folder: no database is created there.
mkdir -p "$T_DIR/elsewhere"
sed "s|db_path: .*|db_path: $T_DIR/elsewhere/data/state.db|" "$CFG" >"$T_DIR/elsewhere.yaml"
for sub in "list" "get device:tv" "export"; do
    rc=0; (cd "$T_DIR/elsewhere" && "$B" -c "$T_DIR/elsewhere.yaml" state $sub >/dev/null 2>"$T_DIR/else.err") || rc=$?
    check "state $sub without a database exits 1 (got $rc)" test "$rc" -eq 1
    check "... saying no database at PATH" grep -q "no database at $T_DIR/elsewhere/data/state.db" "$T_DIR/else.err"
done
check "... and nothing was created" test ! -e "$T_DIR/elsewhere/data"

stop_bridge TERM
check "the daemon stops cleanly (got $BRIDGE_RC)" test "$BRIDGE_RC" -eq 0
check "a new daemon starts after the first stopped (lock released)" bash -c "
    '$B' -c '$CFG' >>'$T_DIR/third.log' 2>&1 & p=\$!
    for i in \$(seq 400); do grep -q 'connected to ' '$T_DIR/third.log' && break; sleep 0.05; done
    kill -TERM \$p; wait \$p; grep -q 'connected to ' '$T_DIR/third.log'"

# Import once the daemon is stopped: allowed.
check "state import with the daemon stopped" "$B" -c "$CFG" state import "$T_DIR/in.json"
check "... is stored" field_is device:tv power false

# A read-only database can be listed (the immutable attribute stops root too).
if chattr +i "$DB" "$T_DIR/db" 2>/dev/null; then
    out=$("$B" -c "$CFG" state list 2>"$T_DIR/ro.err") || true
    chattr -i "$DB" "$T_DIR/db"
    check "state list of a read-only database" bash -c "echo '$out' | jq -e 'index(\"device:tv\") != null'"
    check "... with a quiet stderr" test ! -s "$T_DIR/ro.err"
else
    echo "# SKIP read-only listing: chattr not supported here"
fi

# The seed-000 design's own write, with the sqlite3 shell.
seed() {
    sqlite3 "$DB" "INSERT INTO state_store (key, value) VALUES ('$1', '$2')
        ON CONFLICT(key) DO UPDATE SET value = excluded.value"
}
check "seed-000 upsert of an existing key" seed device:tv '{"power":true}'
check "seed-000 upsert of a new key" seed device:counter '{"value":42}'
check "seed-000 upsert of a value that is not an object" seed device:plug '[1,2]'
check "seed-000 upsert of a value that is not JSON" seed device:sensor 'not json'
check "updated_at of the seed rows is ISO-8601" test "$(sql "$DB" "SELECT count(*) FROM state_store WHERE key IN ('device:tv','device:counter') AND updated_at GLOB '20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z'")" = 2
: >"$T_DIR/bridge.log"
start_bridge "$CFG"
check "the restarted daemon connects" wait_for 20 log_has "connected to "
retained_is() { [ "$(retained_value "$1")" = "$2" ]; }
check "the seed's update is restored (tv power mirrored as 1)" wait_for 20 retained_is /devices/tv/controls/power 1
check "the seed's insert is restored (counter value mirrored as 42)" wait_for 20 retained_is /devices/counter/controls/value 42
pub -t /devices/relay/controls/K1 -m 0
check "the daemon still writes the row the seed wrote" wait_for 20 field_is device:tv power false
check "a value that is not an object: a warning with its key" log_has "warn.*device:plug.*not a JSON object"
check "a value that is not JSON: a warning with its key" log_has "warn.*device:sensor.*not valid JSON"
stop_bridge TERM
check "stops cleanly (got $BRIDGE_RC)" test "$BRIDGE_RC" -eq 0
check "integrity_check ok" test "$(sql "$DB" 'pragma integrity_check')" = ok
t_done
