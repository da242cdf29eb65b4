#!/usr/bin/env bash
# deps.sh - installs every Debian package wb-mqtt-bridge needs to build, run,
# test and benchmark. Idempotent: quick when everything is present.
# Run as root (or with sudo available); used by run.sh, test.sh and bench.sh.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libpaho-mqtt-dev libsqlite3-dev libjson-c-dev libyaml-dev libcmocka-dev
    libmicrohttpd-dev uuid-dev libpq-dev postgresql-15
    mosquitto mosquitto-clients sqlite3 curl python3 jq
    dpkg-dev systemd man-db python3-jsonschema
    clang libclang-rt-14-dev valgrind openssl iproute2
    python3-paho-mqtt python3-jinja2
)
if [ "${WBMB_DEPS_EXTRA:-}" != "" ]; then
    # shellcheck disable=SC2206
    PACKAGES+=($WBMB_DEPS_EXTRA)
fi

# shellcheck source=scripts/lib-apt.sh
source "$(dirname "$0")/lib-apt.sh"
apt_ensure deps.sh "${PACKAGES[@]}"
