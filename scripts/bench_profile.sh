# bench_profile.sh - the e2e benchmark's "profile" phase (sourced by
# bench.sh after bench_e2e.sh, whose helpers it uses): figures that do not
# move with the neighbours on a shared machine.
#
#   instructions  the bridge under `valgrind --tool=callgrind
#                 --collect-systime=nsec`, counters zeroed after start-up and dumped after
#                 the load (callgrind_control -z / -d), two fixed loads:
#                   flood   E2E_PROF_N (20 000) msgs over 1 000 devices at
#                           full speed (QoS 0), to all committed;
#                   steady  E2E_PROF_RATE (200) msg/s on E2E_PROF_RATE/10
#                           (20) devices for E2E_PROF_S (15) s: under callgrind a
#                           message costs ~50x its native time, so the native
#                           1 000 msg/s on 100 devices (1 ms apart, ~60 us
#                           each) is played at a rate where messages still
#                           arrive one at a time, with the same 10 msg/s per
#                           device (what the mirror's interval sees) and the
#                           commit window stretched alike (500 ms: 100
#                           messages per commit, as at 1 000 msg/s). The
#                           bridge is first left idle for E2E_PROF_IDLE_S (10)
#                           s: its cost per second (timers, keepalive) is
#                           counted apart and charged at 1 000 msg/s.
#                 bench/callgrind_split.py splits the self cost by shared
#                 object: ours (the binary), paho, sqlite, json-c, libc, ...;
#                 sysCount is the system calls made. Instruction counts are
#                 repeatable to a fraction of a percent for the same binary
#                 and load, whatever else the machine does.
#   cpu           CPU seconds per 100 000 messages from /proc/<pid>/stat,
#                 native: the flood of the ingest pairs (median pair) and
#                 the steady 1 000 msg/s on 100 devices (the ha phase's run
#                 with the sink off, or one of its own when that phase is
#                 not run).
#
# Sets R_PROF_FLOOD_JSON and R_PROF_STEADY_JSON (callgrind_split.py's
# output), printed by print_profile.

# prof_run NAME N K RATE [IDLE_S]: N messages over K devices (RATE msg/s,
# 0 = full speed) into a fresh bridge under callgrind; sets PROF_JSON
# (callgrind_split's output for the load) and PROF_LOST. With IDLE_S, the
# bridge is first left idle (connected, no messages) for IDLE_S seconds and
# PROF_IDLE_JSON gets that dump, counted per second (messages = IDLE_S).
prof_run() {
    local name=$1 n=$2 k=$3 rate=$4 idle=${5:-}
    local cfg=$E2E_DIR/$name.yaml db=$E2E_DIR/$name/state.db
    rm -rf "$E2E_DIR/$name"
    GEN_COMMIT_MS=${PROF_COMMIT_MS:-100} gen_config "$cfg" "$name" "$k" "$db"
    local wrap=$E2E_DIR/$name.sh out=$E2E_DIR/$name.callgrind
    cat >"$wrap" <<SH
#!/bin/sh
exec valgrind --tool=callgrind --collect-systime=nsec \
    --callgrind-out-file=$out.%p "$E2E_BIN" "\$@"
SH
    chmod +x "$wrap"
    local bin=$E2E_BIN part=1
    E2E_BIN=$wrap start_bridge "$name" "$cfg" "${name}_dev$((k - 1))"
    E2E_BIN=$bin
    # callgrind_control -d writes OUT.PID.1, .2, ...; the exit's dump is
    # OUT.PID and is not read (start-up and shutdown are in no dump read:
    # the counters are zeroed before each measured part).
    PROF_IDLE_JSON=""
    if [ -n "$idle" ]; then
        callgrind_control -z "$BPID" >/dev/null 2>&1
        sleep "$idle"
        callgrind_control -d "$BPID" >/dev/null 2>&1
        PROF_IDLE_JSON=$(python3 bench/callgrind_split.py "$out.$BPID.$part" "$idle")
        part=$((part + 1))
    fi
    callgrind_control -z "$BPID" >/dev/null 2>&1
    local ropt=()
    [ "$rate" = 0 ] || ropt=(-r "$rate")
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k "$k" -q 0 -P "$name" "${ropt[@]}" >/dev/null
    "$E2E_BUILD/bench/commit_wait" "$db" "$n" 600 20 >/dev/null || echo "   $name: not all committed" >&2
    callgrind_control -d "$BPID" >/dev/null 2>&1
    stop_bridge "$name"
    PROF_LOST=$((n - ${ST_applied:-0}))
    PROF_JSON=$(python3 bench/callgrind_split.py "$out.$BPID.$part" "$n")
}

phase_profile() {
    command -v callgrind_control >/dev/null || { echo "   profile: valgrind is missing" >&2; return 1; }
    local n=${E2E_PROF_N:-20000} rate=${E2E_PROF_RATE:-200} secs=${E2E_PROF_S:-15}
    echo "== profile: callgrind, flood of $n msgs over 1000 devices" >&2
    prof_run proff "$n" 1000 0
    R_PROF_FLOOD_JSON=$PROF_JSON
    R_PROF_FLOOD_LOST=$PROF_LOST
    echo "   $R_PROF_FLOOD_JSON" >&2
    local devs=$((rate / 10))
    [ "$devs" -ge 1 ] || devs=1
    echo "== profile: callgrind, $rate msg/s on $devs devices for $secs s (idle ${E2E_PROF_IDLE_S:-10} s first)" >&2
    # The commit window stretched by the same factor as the rate, so a
    # commit holds as many messages as at 1 000 msg/s (100 in 100 ms).
    PROF_COMMIT_MS=$((100 * 1000 / rate)) prof_run profs $((rate * secs)) "$devs" "$rate" "${E2E_PROF_IDLE_S:-10}"
    R_PROF_IDLE_JSON=$PROF_IDLE_JSON
    # At the native 1 000 msg/s a second of the bridge's own timers and
    # wake-ups is shared by 1 000 messages; under callgrind the load runs at
    # $rate msg/s, so its dump holds the idle cost of (N / rate) seconds.
    # The steady figure: (load - idle/s x seconds) / N + idle/s / 1 000.
    R_PROF_STEADY_JSON=$(python3 -c '
import json, sys
load, idle, rate = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
secs = load["messages"] / rate
def per_msg(l, i):
    return round(max(l - i * secs / load["messages"], 0) + i / 1000, 1)
out = dict(load, measured_at_msg_s=rate, idle_per_s=idle)
out["instructions_per_msg_at_1000"] = per_msg(load["instructions_per_msg"], idle["instructions_per_msg"])
out["syscalls_per_msg_at_1000"] = round(max(load["syscalls_per_msg"] - idle["syscalls_per_msg"] * secs / load["messages"], 0) + idle["syscalls_per_msg"] / 1000, 3)
print(json.dumps(out))' "$PROF_JSON" "$PROF_IDLE_JSON" "$rate")
    R_PROF_STEADY_LOST=$PROF_LOST
    echo "   $R_PROF_STEADY_JSON" >&2
    R_PROF_RATE=$rate
}


# The rows print_results adds: instructions per message, split by component.
print_profile() {
    local json=$R_PROF_FLOOD_JSON
    if [ -n "$json" ]; then
        printf '%-44s %-22s %-14s %s\n' "instructions/msg, flood (callgrind)" \
            "$(prof_field "$json" 'j["instructions_per_msg"]')" "$(prof_target flood)" \
            "$(prof_met flood "$(prof_field "$json" 'j["instructions_per_msg"]')")"
        printf '%-44s %-22s %-14s %s\n' "  system calls/msg, flood (+ clock reads)" \
            "$(prof_field "$json" '"%s (+%s)" % (j["syscalls_per_msg"], j["clock_reads_per_msg"])')" "-" "-"
        printf '  split, flood: %s\n' "$(prof_field "$json" 'prof_split(j)')"
    fi
    json=$R_PROF_STEADY_JSON
    if [ -n "$json" ]; then
        printf '%-44s %-22s %-14s %s\n' "instructions/msg, steady 1000/s (callgrind)" \
            "$(prof_field "$json" 'j["instructions_per_msg_at_1000"]')" "$(prof_target steady)" \
            "$(prof_met steady "$(prof_field "$json" 'j["instructions_per_msg_at_1000"]')")"
        printf '%-44s %-22s %-14s %s\n' "  idle: instructions/s, system calls/s" \
            "$(prof_field "$json" '"%d, %s" % (j["idle_per_s"]["instructions_per_msg"], j["idle_per_s"]["syscalls_per_msg"])')" "-" "-"
        printf '%-44s %-22s %-14s %s\n' "  system calls/msg, steady 1000/s" "$(prof_field "$json" 'j["syscalls_per_msg_at_1000"]')" "-" "-"
        printf '  split, steady (at %s/s, idle included): %s\n' "$R_PROF_RATE" "$(prof_field "$json" 'prof_split(j)')"
    fi
}

# prof_field JSON EXPR: a figure of callgrind_split's JSON (python expression on j).
prof_field() {
    python3 -c '
import json, sys
def prof_split(j):
    return ", ".join("%s %d" % (k, v["instructions_per_msg"]) for k, v in j["components"].items() if v["percent"] >= 0.5)
j = json.loads(sys.argv[1])
print(eval(sys.argv[2]))' "$1" "$2"
}

# Issue 22's target: at least 40 % fewer instructions per message than the
# baseline, measured on 2026-12-02 at commit 06f2210 before that work (five
# flood runs 92 944, 93 049, 94 431, 92 793 and 93 423; steady 99 603 (20
# devices at 200 msg/s, 500 ms commit window); README,
# "Where the time goes").
PROF_BASE_FLOOD=${PROF_BASE_FLOOD:-93500}
PROF_BASE_STEADY=${PROF_BASE_STEADY:-99600}
prof_target() {
    local base
    if [ "$1" = flood ]; then base=$PROF_BASE_FLOOD; else base=$PROF_BASE_STEADY; fi
    [ -n "$base" ] && python3 -c "print('<= %d' % ($base * 0.6))" || echo "-"
}
prof_met() {
    local base
    if [ "$1" = flood ]; then base=$PROF_BASE_FLOOD; else base=$PROF_BASE_STEADY; fi
    [ -n "$base" ] || { echo "-"; return; }
    python3 -c "print('yes' if $2 <= $base * 0.6 else 'NO')"
}

# phase_floor: what a bare paho subscriber (bench/mqtt_sink, the ceiling's
# client: the same libpaho-mqtt3a, counting and nothing else) costs at the
# steady rate, 1 000 msg/s on 100 devices for E2E_HA_S (15) s: the floor
# under the bridge's steady figure, paho's own receive path (poll and three
# recv per message, its heap and stack tracking) with no work of ours.
# Sets R_FLOOR_PCT (% of one core) and R_FLOOR_US (per message).
phase_floor() {
    local secs=${E2E_HA_S:-15} n
    n=$((1000 * secs))
    echo "== floor: bare paho subscriber, 1000 msg/s on 100 devices for $secs s" >&2
    "$E2E_BUILD/bench/mqtt_sink" -p "$E2E_PORT" -t 'floor/#' -n "$n" -q 0 >"$E2E_DIR/floor.out" &
    local spid=$!
    E2E_PIDS+=("$spid")
    wait_until 20 grep -q ready "$E2E_DIR/floor.out"
    local t0 t1
    t0=$(now_us)
    "$E2E_BUILD/bench/mqtt_load" -p "$E2E_PORT" -n "$n" -k 100 -q 0 -P floor -r 1000 >/dev/null
    wait "$spid" 2>/dev/null || echo "   floor: not every message arrived" >&2
    t1=$(now_us)
    # The sink's own getrusage from "ready" to the last message (cpu_us).
    local cpu_us
    cpu_us=$(kv "$E2E_DIR/floor.out" cpu_us)
    R_FLOOR_PCT=$(python3 -c "print(round($cpu_us/($t1-$t0)*100,2))")
    R_FLOOR_US=$(python3 -c "print(round($cpu_us/$n,1))")
    echo "   bare subscriber: $R_FLOOR_PCT % of a core, $R_FLOOR_US us/msg" >&2
}
