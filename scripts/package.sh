#!/usr/bin/env bash
# package.sh - builds the Debian package of wb-mqtt-bridge with CPack
# (scripts/package/package.cmake says why CPack and not debian/).
#
# A Release build without sanitizers and without tests in build-pkg/, then
# `cpack -G DEB`; the .deb is left under build/ (as issue 8 asks) and its
# path printed on stdout. Reuses the build folder when present, so a second
# run only relinks what changed.
#
# --arch ARCH builds for Debian architecture ARCH (amd64, arm64: Wiren
# Board 8, armhf: Wiren Board 6/7). The host's own architecture is the
# native build above; another one is a cross build with
# cmake/toolchain-ARCH.cmake in build-pkg-ARCH/, its compiler and libraries
# installed by scripts/deps-cross.sh ARCH. The .deb's Architecture is ARCH
# and its Depends come from dpkg-shlibdeps on the ARCH binary.
#
#   ./scripts/package.sh                 # -> build/wb-mqtt-bridge_<ver>_<arch>.deb
#   ./scripts/package.sh --arch arm64    # -> build/wb-mqtt-bridge_<ver>_arm64.deb
#   PKG_BUILD_DIR=/tmp/b PKG_OUT_DIR=/tmp/o ./scripts/package.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARCH=""
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=${2:?--arch needs amd64, arm64 or armhf}; shift 2 ;;
        --arch=*) ARCH=${1#--arch=}; shift ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package.sh: unknown argument $1 (usage: $0 [--arch amd64|arm64|armhf])" >&2; exit 2 ;;
    esac
done
HOST_ARCH=$(dpkg --print-architecture)
case "$ARCH" in
    "" | "$HOST_ARCH") ARCH="" ;;
    amd64 | arm64 | armhf) ;;
    *) echo "package.sh: unsupported --arch $ARCH (amd64, arm64 or armhf)" >&2; exit 2 ;;
esac

CMAKE_ARGS=()
if [ -z "$ARCH" ]; then
    BUILD_DIR=${PKG_BUILD_DIR:-$ROOT/build-pkg}
    DEPS=("$ROOT/scripts/deps.sh")
else
    BUILD_DIR=${PKG_BUILD_DIR:-$ROOT/build-pkg-$ARCH}
    DEPS=("$ROOT/scripts/deps-cross.sh" "$ARCH")
    CMAKE_ARGS+=("-DCMAKE_TOOLCHAIN_FILE=$ROOT/cmake/toolchain-$ARCH.cmake")
fi
OUT_DIR=${PKG_OUT_DIR:-$ROOT/build}

if [ "${PKG_SKIP_DEPS:-0}" != 1 ]; then
    "${DEPS[@]}"
fi

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DWITH_ASAN=OFF -DWITH_UBSAN=OFF \
    -DWITH_TESTS=OFF "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" >/dev/null
# Strip the binary in the package (debug info stays in the build folder).
(cd "$BUILD_DIR" && cpack -G DEB -D CPACK_STRIP_FILES=ON >/dev/null)

deb=$(ls -t "$BUILD_DIR"/wb-mqtt-bridge_*.deb | head -n1)
mkdir -p "$OUT_DIR"
cp "$deb" "$OUT_DIR/"
echo "$OUT_DIR/$(basename "$deb")"
