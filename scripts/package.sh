#!/usr/bin/env bash
# package.sh - builds the Debian package of wb-mqtt-bridge with CPack
# (scripts/package/package.cmake says why CPack and not debian/).
#
# A Release build without sanitizers and without tests in build-pkg/, then
# `cpack -G DEB`; the .deb is left under build/ (as issue 8 asks) and its
# path printed on stdout. Reuses the build folder when present, so a second
# run only relinks what changed.
#
#   ./scripts/package.sh                 # -> build/wb-mqtt-bridge_<ver>_<arch>.deb
#   PKG_BUILD_DIR=/tmp/b PKG_OUT_DIR=/tmp/o ./scripts/package.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${PKG_BUILD_DIR:-$ROOT/build-pkg}
OUT_DIR=${PKG_OUT_DIR:-$ROOT/build}

if [ "${PKG_SKIP_DEPS:-0}" != 1 ]; then
    "$ROOT/scripts/deps.sh"
fi

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DWITH_ASAN=OFF -DWITH_UBSAN=OFF \
    -DWITH_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" >/dev/null
# Strip the binary in the package (debug info stays in the build folder).
(cd "$BUILD_DIR" && cpack -G DEB -D CPACK_STRIP_FILES=ON >/dev/null)

deb=$(ls -t "$BUILD_DIR"/wb-mqtt-bridge_*.deb | head -n1)
mkdir -p "$OUT_DIR"
cp "$deb" "$OUT_DIR/"
echo "$OUT_DIR/$(basename "$deb")"
