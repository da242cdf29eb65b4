#!/usr/bin/env bash
# build.sh - the build stage of docker/Dockerfile, as a plain script so it
# can be run (and tested: tests/integration/test_docker_steps.sh) without a
# Docker engine.
#
#   docker/build.sh SRC_DIR DESTDIR
#
# Installs the build dependencies (scripts/deps.sh), builds the README's way
# (Release, no sanitizers, no tests) and installs into DESTDIR with
# `cmake --install` (the same install rules as the Debian package). The
# build folder is $WBMB_DOCKER_BUILD_DIR, default SRC_DIR/build-docker; it is
# reused when present.
set -euo pipefail

SRC=$(cd "${1:?usage: build.sh SRC_DIR DESTDIR}" && pwd)
DEST=${2:?usage: build.sh SRC_DIR DESTDIR}
BUILD=${WBMB_DOCKER_BUILD_DIR:-$SRC/build-docker}

"$SRC/scripts/deps.sh"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWITH_ASAN=OFF -DWITH_UBSAN=OFF \
    -DWITH_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
mkdir -p "$DEST"
DESTDIR=$(cd "$DEST" && pwd) cmake --install "$BUILD" --strip >/dev/null
"$DEST/usr/bin/wb-mqtt-bridge" --version
