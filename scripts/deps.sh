#!/usr/bin/env bash
# deps.sh - installs every Debian package wb-mqtt-bridge needs to build, run,
# test and benchmark. Idempotent: quick when everything is present.
# Run as root (or with sudo available); used by run.sh, test.sh and bench.sh.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libpaho-mqtt-dev libsqlite3-dev libjson-c-dev libyaml-dev libcmocka-dev
    libmicrohttpd-dev uuid-dev
    mosquitto mosquitto-clients sqlite3 curl python3 jq
    dpkg-dev systemd man-db python3-jsonschema
    clang libclang-rt-14-dev valgrind openssl iproute2
    python3-paho-mqtt python3-jinja2
)
if [ "${WBMB_DEPS_EXTRA:-}" != "" ]; then
    # shellcheck disable=SC2206
    PACKAGES+=($WBMB_DEPS_EXTRA)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps.sh: run as root to install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
