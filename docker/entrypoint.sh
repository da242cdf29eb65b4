#!/bin/sh
# entrypoint.sh - the container's entry point (docker/Dockerfile), a plain
# script so tests/integration/test_docker_steps.sh runs it without Docker.
#
# Runs the bridge in the foreground on $WBMB_CONFIG (default
# /config/wb-mqtt-bridge.yaml) with the working directory $WBMB_DATA
# (default /data, the volume: a relative db_path lands there too). `exec`
# makes the bridge PID 1 of the container, so `docker stop` (SIGTERM)
# reaches it directly: it flushes the store and exits 0.
#
#   (no arguments)        the daemon
#   -X ...                the daemon with extra options (e.g. --log-level debug)
#   state ... | config ...  the offline tools on the same config and store
#   anything else         run as a command (e.g. sh)
set -eu

CONFIG=${WBMB_CONFIG:-/config/wb-mqtt-bridge.yaml}
DATA=${WBMB_DATA:-/data}

case "${1:-}" in
    "" | -* | state | config) ;;
    *) exec "$@" ;;
esac

if [ ! -r "$CONFIG" ]; then
    echo "entrypoint: cannot read the config $CONFIG (mount one at /config)" >&2
    exit 6
fi
mkdir -p "$DATA" 2>/dev/null || true
if [ ! -w "$DATA" ]; then
    echo "entrypoint: $DATA is not writable by uid $(id -u): chown the volume to it" >&2
    exit 1
fi
cd "$DATA"
exec wb-mqtt-bridge -c "$CONFIG" "$@"
