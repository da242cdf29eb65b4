#!/usr/bin/env bash
# run.sh - README command 1: installs what is missing, builds, starts a local
# mosquitto on 127.0.0.1:1883 when none answers there, and runs the bridge on
# config/example.yaml (SQLite at data/state_store.db) in the foreground.
# Extra arguments are passed to wb-mqtt-bridge.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

if ! mosquitto_pub -h 127.0.0.1 -p 1883 -t wb-mqtt-bridge/ping -m x -q 0 2>/dev/null; then
    echo "run.sh: no broker on 127.0.0.1:1883, starting mosquitto" >&2
    mkdir -p data
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' >data/mosquitto.conf
    mosquitto -c data/mosquitto.conf >data/mosquitto.log 2>&1 &
    BROKER=$!
    trap 'kill $BROKER 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        mosquitto_pub -h 127.0.0.1 -p 1883 -t wb-mqtt-bridge/ping -m x -q 0 2>/dev/null && break
        sleep 0.1
    done
fi

exec_status=0
./build/wb-mqtt-bridge -c config/example.yaml "$@" || exec_status=$?
exit $exec_status
