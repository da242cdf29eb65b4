#!/usr/bin/env bash
# deps-vm.sh - installs what scripts/vm-test.sh needs on the host: debootstrap
# (the Debian 12 guest tree), qemu-system-x86 (the VM, TCG), e2fsprogs
# (mkfs.ext4 -d makes the disk images without loop mounts or root-only
# mounts), qemu-system-arm (qemu-system-aarch64 for --arch arm64) and
# qemu-user-static (the arm64 debootstrap runs its second stage under
# qemu-aarch64 through binfmt_misc), python3-paho-mqtt (the publisher of
# --power-cut). Idempotent like deps.sh: quick when everything is present.
set -euo pipefail

PACKAGES=(debootstrap qemu-system-x86 e2fsprogs dpkg-dev qemu-system-arm qemu-user-static
    python3-paho-mqtt)

# shellcheck source=scripts/lib-apt.sh
source "$(dirname "$0")/lib-apt.sh"
apt_ensure deps-vm.sh "${PACKAGES[@]}"
