#!/bin/bash
# checks.sh - runs INSIDE the Debian 12 VM of scripts/vm-test.sh, at boot,
# from vmtest.service, as root, under the real systemd (PID 1). The guest has
# no network: the .deb's runtime libraries are already in the image.
#
# Each check prints exactly one line on the serial console:
#   VMTEST ok NAME detail | VMTEST fail NAME detail
# extra material as `VMTESTLOG NAME text` lines, `VMTEST done` at the end,
# then the VM powers off. Every wait polls a condition with a deadline;
# the only fixed windows are the ones that check that something does NOT
# happen (no restart loop).
set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0
D=/opt/vmtest
CONF=/etc/wb-mqtt-bridge.yaml
UNIT=wb-mqtt-bridge
DB=/var/lib/wb-mqtt-bridge/state_store.db
# shellcheck source=tests/vm/lib.sh
source "$(dirname "$0")/lib.sh"
prop() { systemctl show -P "$1" "$UNIT"; }
is_active() { [ "$(prop ActiveState)" = active ] && [ "$(prop SubState)" = running ]; }
state_of() { systemctl show -p ActiveState,SubState,MainPID,NRestarts,Result,ExecMainStatus "$UNIT" | tr '\n' ' '; }
pub() { mosquitto_pub -q 1 -t "$1" -m "$2"; }
# The retained value of a topic, or nothing (after 3 s).
retained() { mosquitto_sub -t "$1" -C 1 -W 3 --retained-only 2>/dev/null; }
http_state() { curl -fsS --max-time 2 "http://127.0.0.1:8080/devices/$1/state" 2>/dev/null; }
field_is() { [ "$(http_state "$1" | jq -c ".$2" 2>/dev/null)" = "$3" ]; }
db_field() { wb-mqtt-bridge -c "$CONF" state get "device:$1" 2>&1 | jq -c ".$2" 2>/dev/null || echo absent; }

# The file system before the package, for the purge check: every path
# outside what changes by itself (logs, caches, dpkg's own database, /run).
fs_list() {
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/log -o -path /var/cache -o -path /var/lib/dpkg -o -path /var/lib/apt \
        -o -path /var/lib/systemd -o -path /var/tmp -o -path /opt/vmtest -o -path /root \
        -o -path /var/lib/mosquitto -o -path /etc/ld.so.cache \) -prune -o -print | sort
}
etc_sums() { find /etc -xdev -type f ! -name ld.so.cache -exec md5sum {} + | sort -k2; }

# ---------------------------------------------------------------------------
DEB=$(ls $D/wb-mqtt-bridge_*.deb | grep -v '\.bumped\.' | head -n1)
DEB2=$(ls $D/*.bumped.deb | head -n1)

c_install() {
    fs_list >/root/fs.before
    etc_sums >/root/etc.before
    local out
    out=$(apt-get install -y "$DEB" 2>&1)
    local rc=$?
    if [ $rc -ne 0 ]; then
        # Still install it (dpkg -i: the dependencies are in the image) so
        # that the other checks can run; this check fails.
        DETAIL="apt-get install rc=$rc: $(tail -n3 <<<"$out"); dpkg -i: $(dpkg -i "$DEB" 2>&1 | tail -n1)"
        return 1
    fi
    DETAIL="$(dpkg-query -W -f='${Package} ${Version}' wb-mqtt-bridge); Depends: $(dpkg-deb -f "$DEB" Depends)"
    dpkg-query -W -f='${Status}' wb-mqtt-bridge | grep -q 'install ok installed'
}

c_start() {
    # postinst started it with the packaged config; a test config: one
    # device, and a group commit window of 60 s so that only the stop's
    # flush can put the last state into the database.
    systemctl stop "$UNIT"
    cp $CONF /root/conf.packaged
    sed -i 's/^  commit_interval_ms: 100 /  commit_interval_ms: 60000 /' $CONF
    grep -q 'commit_interval_ms: 60000' $CONF || { DETAIL="could not set commit_interval_ms"; return 1; }
    local t0 out
    t0=$(date +%s%N)
    out=$(systemctl start "$UNIT" 2>&1) || { DETAIL="systemctl start failed: $out $(state_of)"; return 1; }
    # systemctl start of a Type=notify unit returns after READY=1.
    DETAIL="start returned after $((($(date +%s%N) - t0) / 1000000)) ms; $(state_of)"
    is_active && [ "$(prop MainPID)" -gt 0 ]
}

VMDEV='  - id: vmdev
    name: VM test device
    state:
      - topic: /vm/vmdev/level
        field: level
        type: int'

c_reload() {
    local pid1 pid2 meta
    pid1=$(prop MainPID)
    [ -z "$(retained /devices/vmdev/meta)" ] || { DETAIL="/devices/vmdev/meta already retained"; return 1; }
    awk -v dev="$VMDEV" '/^devices: \[\]$/ { print "devices:"; print dev; next } { print }' $CONF >$CONF.new &&
        cat $CONF.new >$CONF && rm -f $CONF.new
    wb-mqtt-bridge -c $CONF --check-config >/dev/null 2>&1 || { DETAIL="test config invalid"; return 1; }
    local out
    out=$(systemctl reload "$UNIT" 2>&1) || { DETAIL="systemctl reload failed: $out"; return 1; }
    wait_for 30 sh -c '[ -n "$(mosquitto_sub -t /devices/vmdev/meta -C 1 -W 3 --retained-only 2>/dev/null)" ]' ||
        { DETAIL="no /devices/vmdev/meta within 30 s; $(state_of)"; return 1; }
    meta=$(retained /devices/vmdev/meta)
    pid2=$(prop MainPID)
    DETAIL="MainPID $pid1 -> $pid2; /devices/vmdev/meta=$meta"
    [ "$pid1" = "$pid2" ] && is_active
}

c_journal_priority() {
    # A malformed payload (not an int) is a warning; then a good one.
    pub /vm/vmdev/level notanumber
    pub /vm/vmdev/level 42
    wait_for 30 field_is vmdev level 42 || { DETAIL="level 42 not applied: $(http_state vmdev)"; return 1; }
    wait_for 30 sh -c "journalctl -u $UNIT -p warning -o cat | grep -q 'rejected message'" ||
        { DETAIL="no 'rejected message' warning in journalctl -u $UNIT -p warning"; return 1; }
    local warn info prios infomsg
    warn=$(journalctl -u $UNIT -p warning -o cat _COMM=wb-mqtt-bridge)
    info=$(journalctl -u $UNIT -p info -o cat _COMM=wb-mqtt-bridge)
    prios=$(journalctl -u $UNIT -o json _COMM=wb-mqtt-bridge | jq -r .PRIORITY | sort | uniq -c | oneline)
    # An info line of the daemon: in -p info, not in -p warning.
    infomsg=$(journalctl -u $UNIT -p info..info -o cat _COMM=wb-mqtt-bridge | tail -n1)
    journalctl -u $UNIT -o short-monotonic --no-hostname | tail -n 40 | sed 's/^/VMTESTLOG journal /' >"$CON"
    DETAIL="daemon line priorities (count prio): $prios; warning lines: $(grep -c . <<<"$warn"), info lines: $(grep -c . <<<"$info"); an info line: $infomsg"
    [ -n "$infomsg" ] || { DETAIL="no info-priority line of the daemon; $DETAIL"; return 1; }
    grep -q 'rejected message' <<<"$warn" || return 1
    grep -qF "$infomsg" <<<"$warn" && { DETAIL="info line shown by -p warning; $DETAIL"; return 1; }
    grep -qF "$infomsg" <<<"$info" || return 1
    # No raw "<N>" prefix left in the messages.
    ! grep -q '^<[0-7]>' <<<"$info"
}

c_stop_flush() {
    pub /vm/vmdev/level 43
    wait_for 30 field_is vmdev level 43 || { DETAIL="level 43 not applied: $(http_state vmdev)"; return 1; }
    local before after t0 err berr
    before=$(db_field vmdev level)
    t0=$(date +%s%N)
    systemctl stop "$UNIT" || { DETAIL="systemctl stop failed"; return 1; }
    local ms=$((($(date +%s%N) - t0) / 1000000))
    after=$(db_field vmdev level)
    err=$(retained /devices/vmdev/meta/error)
    berr=$(retained /devices/wb-mqtt-bridge/meta/error)
    DETAIL="db level before stop: $before, after: $after (commit window 60 s); stop took $ms ms; retained /devices/vmdev/meta/error=$err, /devices/wb-mqtt-bridge/meta/error=$berr; $(prop ActiveState)/$(prop Result)"
    [ "$after" = 43 ] && [ "$err" = offline ] && [ "$berr" = offline ] && [ "$(prop Result)" = success ]
}

c_security() {
    local out
    out=$(systemd-analyze security --no-pager "$UNIT" 2>&1)
    sed 's/^/VMTESTLOG security /' <<<"$out" >"$CON"
    DETAIL=$(grep -i 'overall exposure' <<<"$out" | sed 's/^[^O]*//')
    [ -n "$DETAIL" ]
}

c_invalid_config() {
    systemctl start "$UNIT" && wait_for 30 is_active || { DETAIL="not active before: $(state_of)"; return 1; }
    cp $CONF /root/conf.good
    printf 'no_such_key: 1\n' >>$CONF
    local n0 out rc
    n0=$(prop NRestarts)
    out=$(systemctl restart "$UNIT" 2>&1)
    rc=$?
    # RestartSec=5: watch for 10 s that no restart happens (the only fixed
    # window: it checks an absence).
    local end=$((SECONDS + 10)) n1 st
    while [ $SECONDS -lt $end ]; do
        [ "$(prop NRestarts)" != "$n0" ] && break
        [ "$(prop ActiveState)" = activating ] && break
        sleep 0.5
    done
    n1=$(prop NRestarts)
    st=$(journalctl -u $UNIT -n 20 -o cat | grep -Eo 'status=[0-9]+/[A-Z]+' | tail -n1)
    DETAIL="restart rc=$rc; $(state_of); journal: $st; NRestarts $n0 -> $n1 after 10 s"
    cp /root/conf.good $CONF
    [ $rc -ne 0 ] && [ "$n1" = "$n0" ] && [ "$(prop ActiveState)" = failed ] && [ "$st" = status=6/NOTCONFIGURED ] &&
        [ "$(prop ExecMainStatus)" = 6 ]
}

c_kill9() {
    systemctl reset-failed "$UNIT"
    systemctl start "$UNIT" && wait_for 30 is_active || { DETAIL="not active before: $(state_of)"; return 1; }
    local pid n0 t0
    pid=$(prop MainPID)
    n0=$(prop NRestarts)
    t0=$SECONDS
    kill -9 "$pid"
    wait_for 90 sh -c "[ \"\$(systemctl show -P MainPID $UNIT)\" != $pid ] && [ \"\$(systemctl show -P MainPID $UNIT)\" != 0 ] && [ \"\$(systemctl show -P SubState $UNIT)\" = running ]" ||
        { DETAIL="no restart within 90 s: $(state_of)"; return 1; }
    DETAIL="MainPID $pid -> $(prop MainPID) after $((SECONDS - t0)) s (RestartSec=5); NRestarts $n0 -> $(prop NRestarts); $(state_of)"
    [ "$(prop NRestarts)" = $((n0 + 1)) ] && is_active
}

FREEZE=/var/lib/wb-mqtt-bridge/vmtest-freeze
DROPIN=/etc/systemd/system/$UNIT.service.d
c_watchdog() {
    mkdir -p $DROPIN
    printf '[Service]\nEnvironment=WBMB_TEST_FREEZE_FILE=%s\nWatchdogSec=5\n' $FREEZE >$DROPIN/vmtest-freeze.conf
    systemctl daemon-reload
    systemctl restart "$UNIT" && wait_for 30 is_active || { DETAIL="not active with the drop-in: $(state_of)"; return 1; }
    local pid n0 t0 since
    pid=$(prop MainPID)
    n0=$(prop NRestarts)
    since=$(date '+%Y-%m-%d %H:%M:%S')
    t0=$SECONDS
    touch $FREEZE
    wait_for 60 sh -c "journalctl -u $UNIT --since '$since' -o cat | grep -qi 'watchdog timeout'" ||
        { DETAIL="no watchdog timeout within 60 s: $(state_of)"; rm -f $FREEZE; return 1; }
    local tkill=$((SECONDS - t0))
    wait_for 90 sh -c "[ \"\$(systemctl show -P MainPID $UNIT)\" != $pid ] && [ \"\$(systemctl show -P MainPID $UNIT)\" != 0 ] && [ \"\$(systemctl show -P SubState $UNIT)\" = running ]" ||
        { DETAIL="no restart after the watchdog kill: $(state_of)"; rm -f $FREEZE; return 1; }
    local j n1
    n1=$(prop NRestarts)
    j=$(journalctl -u $UNIT --since "$since" -o cat | grep -Ei 'watchdog timeout|SIGABRT|status=6/ABRT')
    journalctl -u $UNIT --since "$since" -o short-monotonic --no-hostname | sed 's/^/VMTESTLOG watchdog /' >"$CON"
    # The new instance must stay up (no second freeze: the daemon removed the file).
    local pid2=$(prop MainPID)
    local stay=1 end=$((SECONDS + 12))
    while [ $SECONDS -lt $end ]; do
        [ "$(prop MainPID)" = "$pid2" ] || { stay=0; break; }
        sleep 0.5
    done
    DETAIL="froze at +0 s, watchdog kill seen at +$tkill s (WatchdogSec=5); MainPID $pid -> $pid2; NRestarts $n0 -> $n1; freeze file left: $([ -e $FREEZE ] && echo yes || echo no); new instance stayed 12 s: $stay; journal: $(sed 's/^wb-mqtt-bridge.service: //' <<<"$j" | oneline)"
    rm -rf $DROPIN
    systemctl daemon-reload
    systemctl restart "$UNIT"
    wait_for 30 is_active
    [ $stay = 1 ] && [ ! -e $FREEZE ] && [ "$pid2" != "$pid" ] && grep -qi 'watchdog timeout' <<<"$j" &&
        grep -q 'SIGABRT' <<<"$j" && [ "$n1" = $((n0 + 1)) ]
}

c_upgrade() {
    is_active || { DETAIL="not active before: $(state_of)"; return 1; }
    cp $CONF /root/conf.edited
    local v0 pid out rc
    v0=$(dpkg-query -W -f='${Version}' wb-mqtt-bridge)
    pid=$(prop MainPID)
    out=$(dpkg -i --force-confold --force-confdef "$DEB2" </dev/null 2>&1)
    rc=$?
    sed 's/^/VMTESTLOG upgrade /' <<<"$out" >"$CON"
    [ $rc -eq 0 ] || { DETAIL="dpkg -i rc=$rc: $(tail -n3 <<<"$out")"; return 1; }
    wait_for 60 is_active || { DETAIL="not active after the upgrade: $(state_of)"; return 1; }
    local kept=no dist=no lvl
    cmp -s $CONF /root/conf.edited && kept=yes
    [ -e $CONF.dpkg-dist ] && dist=yes
    lvl=$(db_field vmdev level)
    DETAIL="$v0 -> $(dpkg-query -W -f='${Version}' wb-mqtt-bridge); edited conffile kept: $kept (new one as .dpkg-dist: $dist); db level: $lvl; MainPID $pid -> $(prop MainPID)"
    [ $kept = yes ] && [ "$lvl" = 43 ] && [ "$(prop MainPID)" != "$pid" ] && is_active
}

c_purge() {
    local out rc
    out=$(apt-get purge -y wb-mqtt-bridge 2>&1)
    rc=$?
    [ $rc -eq 0 ] || { DETAIL="apt-get purge rc=$rc: $(tail -n3 <<<"$out")"; return 1; }
    local left="" p
    for p in /usr/bin/wb-mqtt-bridge /lib/systemd/system/wb-mqtt-bridge.service $CONF $CONF.dpkg-dist \
        /etc/wb-configs.d/22wb-mqtt-bridge /var/lib/wb-mqtt-bridge /usr/share/doc/wb-mqtt-bridge \
        /usr/share/man/man8/wb-mqtt-bridge.8.gz /etc/systemd/system/multi-user.target.wants/wb-mqtt-bridge.service; do
        [ -e "$p" ] || [ -L "$p" ] && left+=" $p"
    done
    fs_list >/root/fs.after
    etc_sums >/root/etc.after
    local fsdiff etcdiff
    fsdiff=$(diff /root/fs.before /root/fs.after | grep '^[<>]' | head -n 20 | oneline)
    etcdiff=$(diff /root/etc.before /root/etc.after | grep '^[<>]' | head -n 20 | oneline)
    local mq
    mq="mosquitto $(dpkg-query -W -f='${Status}' mosquitto 2>&1 | awk '{print $3}') $(systemctl is-active mosquitto)"
    DETAIL="left:${left:- none}; file list vs before install: ${fsdiff:-same}; /etc checksums: ${etcdiff:-same}; $mq; unit: $(systemctl show -P LoadState $UNIT)"
    [ -z "$left" ] && [ -z "$fsdiff" ] && [ -z "$etcdiff" ] && [ "$mq" = "mosquitto installed active" ] &&
        [ "$(systemctl show -P LoadState $UNIT)" = not-found ]
}

say "VMTEST start $(uname -r) $(systemctl --version | head -n1)"
state=$(systemctl is-system-running --wait 2>&1)
say "VMTEST info boot system=$state failed-units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | oneline)"
wait_for 60 systemctl is-active -q mosquitto || say "VMTEST info mosquitto not active"
check install c_install
check start_active c_start
check reload c_reload
check journal_priority c_journal_priority
check stop_flush c_stop_flush
check security c_security
check invalid_config c_invalid_config
check kill9_restart c_kill9
check watchdog c_watchdog
check upgrade c_upgrade
check purge c_purge
vm_finish
