#!/usr/bin/env bash
# deps-vm.sh - installs what scripts/vm-test.sh needs on the host: debootstrap
# (the Debian 12 guest tree), qemu-system-x86 (the VM, TCG), e2fsprogs
# (mkfs.ext4 -d makes the disk images without loop mounts or root-only
# mounts). Idempotent like deps.sh: quick when everything is present.
set -euo pipefail

PACKAGES=(debootstrap qemu-system-x86 e2fsprogs dpkg-dev)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps-vm.sh: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps-vm.sh: run as root to install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# Other apt users (other sessions, unattended upgrades): wait for the lock.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
