#!/bin/bash
# docker-checks.sh - runs INSIDE the Debian 12 VM of `scripts/vm-test.sh
# --docker`, at boot, from vmtest.service, with Debian's docker.io. The VM
# has user-mode networking (qemu -nic user): the Dockerfile's apt-get steps
# reach Debian's registry through the host; no Docker registry is used.
#
# Output as checks.sh: one `VMTEST ok|fail NAME detail` line per check,
# `VMTESTLOG NAME text` lines, `VMTEST done`, then power off.
set -u
export LC_ALL=C.UTF-8
D=/opt/vmtest
SRC=$D/src
BASE=wbmb-base:bookworm
IMG=wb-mqtt-bridge:vmtest
NET=wbmb
VOL=bridge-data
# shellcheck source=tests/vm/lib.sh
source "$(dirname "$0")/lib.sh"
health() { docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null; }
is_healthy() { [ "$(health "$1")" = healthy ]; }
tv_power() { docker exec "$1" curl -fsS --max-time 2 http://127.0.0.1:8080/devices/living_room_tv/state 2>/dev/null | jq -c .power 2>/dev/null; }
power_is() { [ "$(tv_power "$1")" = "$2" ]; }
run_bridge() {
    docker run -d --name "$1" --network $NET -v $VOL:/data \
        -v $D/bridge.yaml:/config/wb-mqtt-bridge.yaml:ro --stop-timeout 20 $IMG
}

c_network() {
    wait_for 120 sh -c 'getent hosts deb.debian.org >/dev/null' ||
        { DETAIL="deb.debian.org does not resolve: $(cat /etc/resolv.conf | oneline); $(ip -br addr | oneline)"; return 1; }
    DETAIL="$(ip -br addr | grep -v '^lo' | oneline); deb.debian.org $(getent hosts deb.debian.org | head -n1 | awk '{print $1}')"
    curl -fsS --max-time 30 -o /dev/null http://deb.debian.org/debian/dists/bookworm/Release
}

c_import() {
    wait_for 120 docker info >/dev/null 2>&1 || { DETAIL="dockerd does not answer"; return 1; }
    local out
    out=$(docker import $D/docker-base.tar $BASE 2>&1) || { DETAIL="docker import: $out"; return 1; }
    DETAIL="$(docker version -f 'docker {{.Server.Version}}'); $BASE $(docker image inspect -f '{{.Size}}' $BASE | awk '{printf "%d MB", $1/1e6}')"
}

c_build() {
    local out rc
    out=$(cd $SRC && docker build -f docker/Dockerfile --build-arg BASE=$BASE -t $IMG . 2>&1)
    rc=$?
    sed 's/^/VMTESTLOG build /' <<<"$out" | tail -n 60 >"$CON"
    [ $rc -eq 0 ] || { DETAIL="docker build rc=$rc: $(tail -n 3 <<<"$out")"; return 1; }
    DETAIL="$IMG $(docker image inspect -f '{{.Size}}' $IMG | awk '{printf "%d MB", $1/1e6}'); $(docker run --rm $IMG --version 2>&1 | head -n1)"
    docker run --rm --entrypoint sh $IMG -c 'id -u' | grep -qx 10001
}

c_up() {
    # The broker: Debian's mosquitto on the same base (no registry for
    # eclipse-mosquitto), with docker/mosquitto.conf.
    local out
    out=$(printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends mosquitto mosquitto-clients && rm -rf /var/lib/apt/lists/*\n' $BASE |
        docker build -t wbmb-mosquitto:vmtest - 2>&1) || { DETAIL="mosquitto image: $(tail -n 3 <<<"$out")"; return 1; }
    docker network create $NET >/dev/null
    docker volume create $VOL >/dev/null
    docker run -d --name mosquitto --network $NET -v $SRC/docker/mosquitto.conf:/etc/mosquitto/vm.conf:ro \
        wbmb-mosquitto:vmtest mosquitto -c /etc/mosquitto/vm.conf >/dev/null
    # The image's config with a 60 s group-commit window: only the stop's
    # flush can put the last state into the volume.
    sed 's/^  commit_interval_ms: 100/  commit_interval_ms: 60000/' $SRC/docker/wb-mqtt-bridge.yaml >$D/bridge.yaml
    chmod 0644 $D/bridge.yaml
    grep -q 'commit_interval_ms: 60000' $D/bridge.yaml || { DETAIL="could not set commit_interval_ms"; return 1; }
    run_bridge bridge1 >/dev/null || { DETAIL="docker run failed"; return 1; }
    local t0=$SECONDS
    wait_for 240 is_healthy bridge1 ||
        { DETAIL="not healthy within 240 s: $(health bridge1); $(docker logs --tail 5 bridge1 2>&1 | oneline)"; return 1; }
    DETAIL="bridge1 healthy after $((SECONDS - t0)) s (HEALTHCHECK interval 30 s); $(docker exec bridge1 curl -fsS http://127.0.0.1:8080/health)"
}

c_stop_flush() {
    docker exec mosquitto mosquitto_pub -q 1 -t /devices/wb-mr6c_1/controls/K1 -m 1
    wait_for 30 power_is bridge1 true || { DETAIL="power not applied: $(tv_power bridge1)"; return 1; }
    local since t_stop ev kill_ns die_ns
    since=$(date +%s.%N)
    docker stop bridge1 >/dev/null
    t_stop=$(date +%s%N)
    # Where the time of `docker stop` goes: the engine's events (kill: the
    # SIGTERM sent, die: the bridge exited, stop) with their times, beside
    # the bridge's own log below. Only `docker stop` itself is timed: the
    # `docker run` that reads the volume below takes seconds under TCG.
    ev=$(docker events --since "$since" --until "$(date +%s.%N)" --filter container=bridge1 \
        --format '{{.TimeNano}} {{.Action}}' 2>&1 || true)
    sed 's/^/VMTESTLOG stop-events /' <<<"$ev" >"$CON"
    kill_ns=$(awk '$2 == "kill" { print $1; exit }' <<<"$ev")
    die_ns=$(awk '$2 == "die" { print $1; exit }' <<<"$ev")
    local code after
    code=$(docker inspect -f '{{.State.ExitCode}}' bridge1)
    after=$(docker run --rm -v $VOL:/data -v $D/bridge.yaml:/config/wb-mqtt-bridge.yaml:ro $IMG state get device:living_room_tv 2>&1 | jq -c .power 2>/dev/null)
    docker logs --tail 8 bridge1 2>&1 | sed 's/^/VMTESTLOG stop /' >"$CON"
    DETAIL="docker stop took $(((t_stop - ${since/./}) / 1000000)) ms (SIGTERM to exit: $(((${die_ns:-0} - ${kill_ns:-0}) / 1000000)) ms), exit code $code; power in the volume's database after the stop: $after (commit window 60 s)"
    [ "$code" = 0 ] && [ "$after" = true ]
}

c_restore() {
    docker rm bridge1 >/dev/null
    run_bridge bridge2 >/dev/null || { DETAIL="docker run failed"; return 1; }
    # The relay's message was not retained: only the volume can give it back.
    wait_for 60 power_is bridge2 true || { DETAIL="bridge2 power: $(tv_power bridge2); $(docker logs --tail 5 bridge2 2>&1 | oneline)"; return 1; }
    DETAIL="bridge2 (new container, same volume): power=$(tv_power bridge2); $(docker logs bridge2 2>&1 | grep -o 'restored [0-9]* of [0-9]* devices' | head -n1)"
    docker stop bridge2 >/dev/null
}

say "VMTEST start $(uname -r) docker mode"
state=$(systemctl is-system-running --wait 2>&1)
say "VMTEST info boot system=$state failed-units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | oneline)"
check network c_network
check docker_import c_import
check docker_build c_build
check compose_up_healthy c_up
check docker_stop_flush c_stop_flush
check new_container_restores c_restore
vm_finish
