#!/usr/bin/env bash
# deps-cross.sh ARCH - installs what a cross build for ARCH (arm64: Wiren
# Board 8; armhf: Wiren Board 6/7; amd64 from another host) needs: the
# Debian foreign architecture, the cross compiler (crossbuild-essential-ARCH),
# the -dev packages of ARCH (multiarch, under /usr/lib/<triplet>) and
# qemu-user-static to run the unit tests. Used by scripts/package.sh --arch and scripts/cross-test.sh.
# Idempotent: quick when everything is present. Run as root (or with sudo).
#
#   ./scripts/deps-cross.sh arm64
#   ./scripts/deps-cross.sh armhf
set -euo pipefail

ARCH=${1:-}
case "$ARCH" in
    arm64 | armhf | amd64) ;;
    *)
        echo "usage: $0 arm64|armhf|amd64" >&2
        exit 2
        ;;
esac

# Host tools (no suffix) and the ARCH libraries (:ARCH). qemu-user-static
# registers its binfmt handlers itself where binfmt_misc is mounted; the
# tests call qemu explicitly (CMAKE_CROSSCOMPILING_EMULATOR), so they do not
# depend on binfmt.
# libpq-dev is the host's (no :ARCH): it is not Multi-Arch, so the ARCH one
# would replace it, and the daemon needs only its headers (CMakeLists.txt).
# libpq5:ARCH is what the PostgreSQL backend loads at run time (dlopen): the
# shared StateStore suite against the host's PostgreSQL server needs it.
PACKAGES=(
    cmake pkg-config dpkg-dev file "crossbuild-essential-$ARCH" qemu-user-static libpq-dev
)
for p in libpaho-mqtt-dev libsqlite3-dev libjson-c-dev libyaml-dev libcmocka-dev \
    libmicrohttpd-dev uuid-dev libpq5; do
    PACKAGES+=("$p:$ARCH")
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps-cross.sh: run as root" >&2; exit 1; }
    SUDO=sudo
fi

# Read whole first: with pipefail, `dpkg ... | grep -q` can fail on SIGPIPE.
foreign=$(dpkg --print-foreign-architectures)
if ! grep -qx "$ARCH" <<<"$foreign"; then
    echo "deps-cross.sh: dpkg --add-architecture $ARCH" >&2
    $SUDO dpkg --add-architecture "$ARCH"
fi

# A new architecture has no package lists yet: apt_ensure updates them first.
# shellcheck source=scripts/lib-apt.sh
source "$(dirname "$0")/lib-apt.sh"
apt_ensure deps-cross.sh "${PACKAGES[@]}"
