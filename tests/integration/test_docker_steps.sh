#!/usr/bin/env bash
# The Docker image's steps without a Docker engine: docker/build.sh (the
# build stage) into a DESTDIR stage, the container config, and
# docker/entrypoint.sh (the runtime stage) starting the staged binary
# against a test mosquitto and answering /health. The build folder is kept
# under $WBMB_BUILD_DIR/docker-build and reused.
source "$(dirname "$0")/lib.sh"

D="$WBMB_SOURCE_DIR/docker"
STAGE="$T_DIR/stage"
export WBMB_DOCKER_BUILD_DIR=${WBMB_BUILD_DIR:-$T_DIR}/docker-build

# The Dockerfile calls these very scripts, and stays on bookworm-slim.
check "Dockerfile: build stage runs docker/build.sh" grep -qE '^RUN docker/build.sh /src /stage$' "$D/Dockerfile"
check "Dockerfile: entry point is docker/entrypoint.sh" grep -qE '^ENTRYPOINT \["/usr/local/bin/entrypoint.sh"\]$' "$D/Dockerfile"
check "Dockerfile: two stages on \${BASE}, default debian:bookworm-slim" bash -c \
    "grep -qx 'ARG BASE=debian:bookworm-slim' '$D/Dockerfile' && test \$(grep -cE '^FROM \\\$\{BASE\}( |\$)' '$D/Dockerfile') -eq 2"
check "Dockerfile: non-root user, /data volume, healthcheck" bash -c \
    "grep -q '^USER wbmb' '$D/Dockerfile' && grep -q '^VOLUME /data' '$D/Dockerfile' && grep -q 'curl -fsS http://127.0.0.1:8080/health' '$D/Dockerfile'"
check "compose.yml has mosquitto and the bridge" bash -c \
    "grep -q 'image: eclipse-mosquitto' '$D/compose.yml' && grep -q 'dockerfile: docker/Dockerfile' '$D/compose.yml'"

check "docker/build.sh builds and installs into the stage" \
    bash -c "'$D/build.sh' '$WBMB_SOURCE_DIR' '$STAGE' >'$T_DIR/build.log' 2>&1 || { cat '$T_DIR/build.log'; exit 1; }"
BIN="$STAGE/usr/bin/wb-mqtt-bridge"
check "staged binary runs --version" bash -c "'$BIN' --version | grep -q '^wb-mqtt-bridge '"
check "staged binary has no sanitizer runtime" bash -c "! ldd '$BIN' | grep -qE 'libasan|libubsan'"
# Every file the runtime stage copies from /stage exists in the stage.
for f in $(sed -n 's#^COPY --from=build /stage\([^ ]*\) .*#\1#p' "$D/Dockerfile"); do
    check "stage holds $f (copied by the Dockerfile)" test -e "$STAGE$f"
done
# The runtime stage's libraries are those the binary links (no more, no less).
for lib in libpaho-mqtt1.3 libsqlite3-0 libjson-c5 libyaml-0-2 libmicrohttpd12 libpq5 libuuid1; do
    check "Dockerfile runtime installs $lib" grep -qw "$lib" "$D/Dockerfile"
done

check "container config is valid" "$BIN" -c "$D/wb-mqtt-bridge.yaml" --check-config
"$BIN" config to-json <"$D/wb-mqtt-bridge.yaml" >"$T_DIR/docker.json"
check "container config: http.listen is 0.0.0.0:8080" jq -e '.http.listen == "0.0.0.0:8080"' "$T_DIR/docker.json"
check "container config: db in the /data volume" jq -e '.persistence.db_path == "/data/state_store.db"' "$T_DIR/docker.json"
check "container config: broker is the compose service" jq -e '.mqtt.host == "mosquitto"' "$T_DIR/docker.json"

# The entry point, as the container runs it, on the container config with
# the broker, the port and /data pointed at this test.
start_broker
HTTP_PORT=$(free_port)
mkdir -p "$T_DIR/config"
sed -e "s#host: mosquitto#host: 127.0.0.1#" -e "s#port: 1883#port: $MQTT_PORT#" \
    -e "s#/data/state_store.db#$T_DIR/data/state_store.db#" \
    -e "s#listen: 0.0.0.0:8080#listen: 127.0.0.1:$HTTP_PORT#" \
    "$D/wb-mqtt-bridge.yaml" >"$T_DIR/config/wb-mqtt-bridge.yaml"
export WBMB_CONFIG="$T_DIR/config/wb-mqtt-bridge.yaml" WBMB_DATA="$T_DIR/data"
PATH="$STAGE/usr/bin:$PATH" sh "$D/entrypoint.sh" >>"$T_DIR/bridge.log" 2>&1 &
BRIDGE_PID=$!
T_PIDS+=("$BRIDGE_PID")
health() { curl -fsS "http://127.0.0.1:$HTTP_PORT/health"; }
check "entrypoint: /health answers" wait_for 30 health
check "entrypoint: /health says MQTT connected" wait_for 30 bash -c \
    "curl -fsS http://127.0.0.1:$HTTP_PORT/health | jq -e '.status == \"ok\" and .mqtt == \"connected\" and .db == \"ok\"'"
check "entrypoint: the daemon replaced the shell (exec)" bash -c \
    "tr '\0' ' ' </proc/$BRIDGE_PID/cmdline | grep -q '^wb-mqtt-bridge -c '"
check "entrypoint: working directory is the data volume" \
    test "$(readlink /proc/$BRIDGE_PID/cwd)" = "$T_DIR/data"
pub -t /devices/wb-mr6c_1/controls/K1 -m 1
check "a device message is served" wait_for 20 bash -c \
    "curl -fsS http://127.0.0.1:$HTTP_PORT/devices/living_room_tv/state | jq -e '.power == true'"
stop_bridge TERM
check "SIGTERM to the entry point's process: clean stop" test "$BRIDGE_RC" -eq 0
check "state in the data volume" test -f "$T_DIR/data/state_store.db"
check "entrypoint: state tools on the same config" bash -c \
    "PATH='$STAGE/usr/bin':\$PATH sh '$D/entrypoint.sh' state get device:living_room_tv | jq -e '.power == true'"
set +e
WBMB_CONFIG="$T_DIR/nope.yaml" PATH="$STAGE/usr/bin:$PATH" sh "$D/entrypoint.sh" >/dev/null 2>"$T_DIR/err"; rc=$?
set -e
check "entrypoint: a missing config exits 6 with a message" bash -c "[ $rc -eq 6 ] && grep -q 'cannot read the config' '$T_DIR/err'"
check "entrypoint: other commands run as is" test "$(sh "$D/entrypoint.sh" echo hi)" = hi
t_done
