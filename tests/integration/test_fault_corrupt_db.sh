#!/usr/bin/env bash
# A bad database file at start-up: random garbage, a real database truncated
# in the middle of a page, a real database with a garbage page in the middle.
# Each time the bridge must start, move the bad file aside to
# <db>.corrupt.<timestamp> (byte for byte the bad file), log an error, start
# with a fresh store and work (a publish is stored, SIGTERM exits 0).
# And the opposite: a torn -wal left by kill -9 (its last frame cut short) is
# normal crash debris, not corruption: the file stays where it is.
source "$(dirname "$0")/lib.sh"

start_broker
basic_config "$T_DIR/config.yaml"
DB=$T_DIR/db/state.db
mkdir -p "$T_DIR/db"

# make_real_db: a database with a few states, written by the bridge itself.
make_real_db() {
    rm -f "$DB" "$DB"-* "$DB".corrupt.*
    : >"$T_DIR/bridge.log"
    start_bridge "$T_DIR/config.yaml"
    wait_for 30 log_has "MQTT connected"
    for v in $(seq 1 200); do echo "$v"; done |
        mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t test/counter/a -l
    pub -t /devices/relay/controls/K1 -m 1
    wait_for 30 field_is device:counter value 200
    wait_for 30 field_is device:tv power true
    stop_bridge TERM
}

# try_bad_start NAME: starts on the bad file in place, checks the contract.
try_bad_start() {
    local name=$1
    cp "$DB" "$T_DIR/bad-$name.db"
    : >"$T_DIR/bridge.log"
    start_bridge "$T_DIR/config.yaml"
    check "$name: bridge starts and connects" wait_for 30 log_has "MQTT connected"
    check "$name: corruption logged as an error" log_has "error +store: database .* is corrupt"
    local aside
    aside=$(ls "$DB".corrupt.* 2>/dev/null | grep -v -- '-wal$\|-shm$' | head -1 || true)
    check "$name: bad file moved aside as <db>.corrupt.<timestamp> ($(basename "${aside:-none}"))" \
        bash -c "[[ '$aside' =~ \\.corrupt\\.[0-9]{8}T[0-9]{6}Z(\\.[0-9]+)?$ ]]"
    check "$name: the aside file is the bad file, unchanged" cmp -s "$aside" "$T_DIR/bad-$name.db"
    check "$name: state starts fresh" bash -c "! '$WBMB_BIN' -c '$T_DIR/config.yaml' state get device:counter 2>/dev/null"
    pub -t test/counter/a -m 7
    check "$name: the daemon works on the fresh store" wait_for 20 field_is device:counter value 7
    stop_bridge TERM
    check "$name: SIGTERM exit code 0 (got $BRIDGE_RC)" test "$BRIDGE_RC" -eq 0
    check "$name: fresh file passes integrity_check" test "$(sql "$DB" 'pragma integrity_check')" = ok
}

# 1. Not a database at all.
rm -f "$DB" "$DB"-*
head -c 20000 /dev/urandom >"$DB"
try_bad_start garbage

# 2. A real database cut in the middle of its third page.
make_real_db
check "real database has 200 history rows" \
    test "$(sql "$DB" "select count(*) from device_state_snapshots where device_id='counter'")" -ge 200
pages=$(sql "$DB" 'pragma page_count')
t_log "real database: $pages pages of $(sql "$DB" 'pragma page_size') bytes"
truncate -s $((2 * 4096 + 1000)) "$DB"
try_bad_start truncated

# 3. A real database with garbage over one of its B-tree pages.
make_real_db
dd if=/dev/urandom of="$DB" bs=4096 seek=2 count=1 conv=notrunc status=none
try_bad_start garbage-page

# 4. A torn -wal after kill -9 is not corruption.
make_real_db
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/config.yaml"
wait_for 30 log_has "MQTT connected"
pub -t test/counter/a -m 500
check "torn wal: value committed before the kill" wait_for 20 bash -c \
    "[ \"\$(sqlite3 -readonly '$DB' \"select json_extract(value, '\\\$.value') from state_store where key='device:counter'\")\" = 500 ]"
stop_bridge KILL
wal_size=$(stat -c %s "$DB-wal" 2>/dev/null || echo 0)
t_log "torn wal: -wal is $wal_size bytes after kill -9"
if [ "$wal_size" -gt 100 ]; then truncate -s $((wal_size - 100)) "$DB-wal"; fi
: >"$T_DIR/bridge.log"
start_bridge "$T_DIR/config.yaml"
check "torn wal: bridge starts" wait_for 30 log_has "MQTT connected"
check "torn wal: nothing moved aside" bash -c "! ls '$DB'.corrupt.* >/dev/null 2>&1"
check "torn wal: no corruption reported" bash -c "! grep -q 'is corrupt' '$T_DIR/bridge.log'"
check "torn wal: older committed state restored (200 or 500)" \
    bash -c "v=\$('$WBMB_BIN' -c '$T_DIR/config.yaml' state get device:counter | jq .value); [ \"\$v\" = 200 ] || [ \"\$v\" = 500 ]"
stop_bridge TERM
check "torn wal: SIGTERM exit code 0" test "$BRIDGE_RC" -eq 0
check "torn wal: integrity_check ok" test "$(sql "$DB" 'pragma integrity_check')" = ok
t_done
