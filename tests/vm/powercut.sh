#!/bin/bash
# powercut.sh - runs INSIDE the VM of `scripts/vm-test.sh --power-cut`, at
# every boot of the same disk image, from vmtest.service, as root. The host
# kills qemu (SIGKILL) while it publishes a steady stream into this guest's
# broker, so every boot after the first one follows a power cut.
#
# First boot: installs the .deb, disables its unit (this script starts it,
# after the check) and writes the test config: one device `cut` whose int
# field `seq` comes from /vm/cut/seq, the HTTP API on all interfaces (the
# host reaches it through a qemu hostfwd), the default commit_interval_ms
# (100) and sync_interval_ms (1000).
# Every boot, before the bridge opens the database: a copy of the database
# and its WAL as the cut left them (not the file itself: sqlite3 as root
# would leave root-owned -shm/-wal files), `PRAGMA integrity_check` on the
# copy and the stored `seq` from it (`wb-mqtt-bridge state get` on a config
# whose db_path is the copy). Then the bridge starts; it must come up
# active, with no error in the journal, no file moved aside as corrupt, and
# serve the stored seq on HTTP. One line for the host:
#   VMTEST ready boot=N integrity=ok stored=S wal=BYTES restored=S start=ok ...
# or `VMTEST fail cut ...`.
set -u
export LC_ALL=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 DEBIAN_FRONTEND=noninteractive
D=/opt/vmtest
CONF=/etc/wb-mqtt-bridge.yaml
UNIT=wb-mqtt-bridge
DIR=/var/lib/wb-mqtt-bridge
DB=$DIR/state_store.db
# shellcheck source=tests/vm/lib.sh
source "$(dirname "$0")/lib.sh"

BOOT=$(($(cat /var/lib/vmtest-boot 2>/dev/null || echo 0) + 1))
echo $BOOT >/var/lib/vmtest-boot
sync
say "VMTEST start boot=$BOOT $(uname -r) $(systemctl --version | head -n1)"

CUTDEV='  - id: cut
    name: power cut test device
    state:
      - topic: /vm/cut/seq
        field: seq
        type: int'

if ! dpkg-query -W -f='${Status}' $UNIT 2>/dev/null | grep -q 'install ok installed'; then
    DEB=$(ls $D/wb-mqtt-bridge_*.deb | grep -v '\.bumped\.' | head -n1)
    out=$(dpkg -i "$DEB" 2>&1) || { say "VMTEST fail cut dpkg -i: $(tail -n3 <<<"$out" | oneline)"; exit 1; }
    systemctl stop $UNIT
    systemctl disable -q $UNIT
    rm -f $DB $DB-wal $DB-shm
    sed -i 's/^  listen: 127.0.0.1:8080 /  listen: 0.0.0.0:8080 /' $CONF
    awk -v dev="$CUTDEV" '/^devices: \[\]$/ { print "devices:"; print dev; next } { print }' $CONF >$CONF.new &&
        cat $CONF.new >$CONF && rm -f $CONF.new
    wb-mqtt-bridge -c $CONF --check-config >/dev/null 2>&1 || { say "VMTEST fail cut test config invalid"; exit 1; }
    say "VMTEST info installed $(dpkg-query -W -f='${Version}' $UNIT); $(grep -E '^  (commit|sync)_interval_ms' $CONF | awk '{print $1 $2}' | oneline)"
    # Everything the install wrote is on the disk before the first cut.
    sync
fi

# ---- the database as the cut left it ------------------------------------------
C=/run/cutcheck
rm -rf $C
mkdir -p $C
wal=none
if [ -e $DB ]; then
    cp $DB $C/state_store.db
    [ -e $DB-wal ] && { cp $DB-wal $C/state_store.db-wal; wal=$(stat -c %s $DB-wal); }
    integ=$(sqlite3 $C/state_store.db 'PRAGMA integrity_check' 2>&1 | oneline | sed 's/ *$//; s/ /_/g')
    sed "s#^  db_path: .*#  db_path: $C/state_store.db#" $CONF >$C/conf.yaml
    stored=$(wb-mqtt-bridge -c $C/conf.yaml state get device:cut 2>/dev/null | jq -r '.seq // "none"' 2>/dev/null)
    [ -n "$stored" ] || stored=none
else
    integ=ok stored=none
fi

# ---- the bridge starts and restores it ------------------------------------------
since=$(date '+%Y-%m-%d %H:%M:%S')
start=ok
out=$(systemctl start $UNIT 2>&1) || start="failed:$(oneline <<<"$out")"
http_seq() { curl -fsS --max-time 2 http://127.0.0.1:8080/devices/cut/state 2>/dev/null | jq -r '.seq // "none"' 2>/dev/null; }
restored_is() { [ "$(http_seq)" = "$1" ]; }
restored=""
if [ "$stored" = none ]; then
    wait_for 30 sh -c 'curl -fsS --max-time 2 http://127.0.0.1:8080/health >/dev/null 2>&1' && restored=none
else
    wait_for 30 restored_is "$stored" && restored=$stored
fi
[ -n "$restored" ] || restored="$(http_seq)"
errs=$(journalctl -u $UNIT --since "$since" -p err -o cat | oneline)
corrupt=$(ls $DIR | grep -c '\.corrupt\.')
active=$(systemctl show -P ActiveState $UNIT)
journalctl -u $UNIT --since "$since" -o short-monotonic --no-hostname | tail -n 15 |
    sed "s/^/VMTESTLOG boot$BOOT /" >"$CON"
say "VMTEST ready boot=$BOOT integrity=$integ stored=$stored wal=$wal restored=$restored start=$start active=$active corrupt_files=$corrupt errors=${errs:-none}"
