#!/usr/bin/env bash
# vm-test.sh - the Debian package under the real systemd, in a Debian 12 VM
# (qemu, TCG: no KVM needed). Not part of scripts/test.sh: it takes minutes.
#
#   ./scripts/vm-test.sh              # every check; exit 0 only if all pass
#   ./scripts/vm-test.sh --docker     # the Docker image in the same VM (below)
#   ./scripts/vm-test.sh --base-only  # only build the cached base tarballs
#
# 1. Base: debootstrap of bookworm (systemd, the kernel, mosquitto, the
#    .deb's runtime libraries, docker.io) cached as
#    build-vm/base/bookworm-<hash>.tar (the hash is of the package list; the
#    tarball also serves `docker import`). Built once (~4 min).
# 2. Per run: the tarball unpacked into build-vm/run/root, the .deb (built by
#    scripts/package.sh, plus a copy repacked with a bumped version for the
#    upgrade check) and tests/vm/checks.sh copied in, a oneshot unit that runs
#    them at boot, then `mkfs.ext4 -d` makes a fresh disk image: every run
#    starts clean.
# 3. qemu boots it with no network (-nic none); the checks print
#    `VMTEST ok|fail|info NAME detail` lines on the serial console and power
#    off. The host waits up to VM_TIMEOUT_S (900) for `VMTEST done`, kills
#    qemu if it hangs, and writes the table to build-vm/vm-test-results.md.
#
# --docker: the same VM runs tests/vm/docker-checks.sh with Debian's docker.io
# instead: a base image by `docker import` of a second cached tarball (a
# plain minbase debootstrap, what debian:bookworm-slim holds), `docker build`
# of docker/Dockerfile with --build-arg BASE=it, mosquitto and the bridge on
# one docker network, the health check, `docker stop` flushing into the
# volume and a new container restoring it. No Docker registry is reachable,
# but the Dockerfile's stages run apt-get: this VM gets qemu user-mode
# networking (-nic user, NAT through the host) to reach deb.debian.org.
# Results in build-vm/vm-test-docker-results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VM_DIR=${VM_DIR:-$ROOT/build-vm}
VM_TIMEOUT_S=${VM_TIMEOUT_S:-900}
MODE=vm
case "${1:-}" in
    --base-only) MODE=base ;;
    --docker) MODE=docker ;;
    "") ;;
    *) echo "usage: $0 [--docker|--base-only]" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || { echo "vm-test.sh: run as root (debootstrap, file owners in the image)" >&2; exit 1; }
"$ROOT/scripts/deps-vm.sh"

# Runtime dependencies of the .deb (dpkg-deb -I: Depends), installed in the
# base because the guest has no network.
INCLUDE=systemd,systemd-sysv,dbus,linux-image-amd64,udev,iproute2,procps,kmod
INCLUDE+=,mosquitto,mosquitto-clients,curl,sqlite3,jq,ca-certificates,docker.io
INCLUDE+=,libpaho-mqtt1.3,libsqlite3-0,libjson-c5,libyaml-0-2,libmicrohttpd12,libpq5,libuuid1
KEY=$(printf '%s' "bookworm $INCLUDE" | sha256sum | cut -c1-12)
BASE_TAR=$VM_DIR/base/bookworm-$KEY.tar

log() { echo "vm-test.sh: $*" >&2; }

build_base() {
    [ -s "$BASE_TAR" ] && return 0
    local tree=$VM_DIR/base/tree.$$
    mkdir -p "$VM_DIR/base"
    rm -rf "$tree"
    log "debootstrap bookworm into $tree (a few minutes, once)"
    local t0=$SECONDS
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$tree" \
        http://deb.debian.org/debian >"$VM_DIR/base/debootstrap.log" 2>&1 ||
        { log "debootstrap failed, see $VM_DIR/base/debootstrap.log"; tail -20 "$VM_DIR/base/debootstrap.log" >&2; exit 1; }
    # The guest's block device is virtio: make sure the initrd has its driver.
    printf 'virtio_pci\nvirtio_blk\next4\n' >>"$tree/etc/initramfs-tools/modules"
    chroot "$tree" update-initramfs -u -k all >>"$VM_DIR/base/debootstrap.log" 2>&1
    chroot "$tree" apt-get clean
    rm -rf "$tree"/var/lib/apt/lists/*_Packages
    echo wbmb-vm >"$tree/etc/hostname"
    # root without a password on the serial console, for debugging by hand.
    chroot "$tree" passwd -d root >/dev/null
    tar -C "$tree" --numeric-owner -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$tree"
    log "base $BASE_TAR built in $((SECONDS - t0)) s"
}

# The Docker base image's tree: minbase only (~120 MB), like bookworm-slim.
DOCKER_TAR=$VM_DIR/base/bookworm-minbase.tar
build_docker_base() {
    [ -s "$DOCKER_TAR" ] && return 0
    local tree=$VM_DIR/base/dtree.$$
    rm -rf "$tree"
    log "debootstrap minbase bookworm for docker import (once)"
    debootstrap --variant=minbase bookworm "$tree" http://deb.debian.org/debian \
        >"$VM_DIR/base/debootstrap-minbase.log" 2>&1 ||
        { log "debootstrap failed, see $VM_DIR/base/debootstrap-minbase.log"; exit 1; }
    chroot "$tree" apt-get clean
    rm -rf "$tree"/var/lib/apt/lists/*
    # Containers take the engine's resolver; the host's has no place here.
    : >"$tree/etc/resolv.conf"
    tar -C "$tree" --numeric-owner -cf "$DOCKER_TAR.tmp" .
    mv "$DOCKER_TAR.tmp" "$DOCKER_TAR"
    rm -rf "$tree"
}

build_base
[ "$MODE" = vm ] || build_docker_base
[ "$MODE" = base ] && exit 0
if [ "$MODE" = docker ]; then
    VM_TIMEOUT_S=${VM_TIMEOUT_S_DOCKER:-2700}
    DISK_SIZE=16G MEM=3072 NIC="user,model=virtio-net-pci"
    GUEST_SCRIPT=docker-checks.sh RESULTS_NAME=vm-test-docker
    # The kernel has AppArmor on but the base has no apparmor_parser
    # (docker.io only recommends apparmor), so dockerd cannot load its
    # docker-default profile and every RUN fails: boot without AppArmor.
    KARGS="apparmor=0"
else
    DISK_SIZE=3G MEM=1536 NIC=none GUEST_SCRIPT=checks.sh RESULTS_NAME=vm-test KARGS=""
fi

# ---- the packages ----------------------------------------------------------
RUN=$VM_DIR/run
rm -rf "$RUN"
mkdir -p "$RUN"
t_start=$SECONDS
DEB=$(PKG_OUT_DIR=$RUN "$ROOT/scripts/package.sh" | tail -n1)
[ -s "$DEB" ] || { log "package.sh gave no .deb"; exit 1; }
# The upgrade: the same package with the version bumped and the packaged
# conffile changed (a comment), so dpkg really meets a conffile the admin
# edited and the package changed: --force-confold must keep the admin's.
VER=$(dpkg-deb -f "$DEB" Version)
NEWVER=$VER+vmtest1
rm -rf "$RUN/repack"
dpkg-deb -R "$DEB" "$RUN/repack"
sed -i "s/^Version: .*/Version: $NEWVER/" "$RUN/repack/DEBIAN/control"
echo "# (vm-test.sh: the packaged file of $NEWVER)" >>"$RUN/repack/etc/wb-mqtt-bridge.yaml"
(cd "$RUN/repack" && awk '{print $2}' DEBIAN/md5sums | xargs md5sum >DEBIAN/md5sums.new &&
    mv DEBIAN/md5sums.new DEBIAN/md5sums)
DEB2=$RUN/wb-mqtt-bridge_${NEWVER}_amd64.bumped.deb
dpkg-deb --root-owner-group -b "$RUN/repack" "$DEB2" >/dev/null
rm -rf "$RUN/repack"
log "packages: $(basename "$DEB") and $(basename "$DEB2") ($((SECONDS - t_start)) s)"

# ---- the guest's disk --------------------------------------------------------
t_img=$SECONDS
TREE=$RUN/root
mkdir -p "$TREE"
tar -C "$TREE" --numeric-owner -xf "$BASE_TAR"
install -d "$TREE/opt/vmtest"
install -m 0644 "$DEB" "$DEB2" "$TREE/opt/vmtest/"
install -m 0755 "$ROOT/tests/vm/$GUEST_SCRIPT" "$TREE/opt/vmtest/checks.sh"
install -m 0644 "$ROOT/tests/vm/lib.sh" "$TREE/opt/vmtest/lib.sh"
if [ "$MODE" = docker ]; then
    install -m 0644 "$DOCKER_TAR" "$TREE/opt/vmtest/docker-base.tar"
    # The build context: the tracked files as they are in the work tree.
    install -d "$TREE/opt/vmtest/src"
    git -C "$ROOT" ls-files -z | tar -C "$ROOT" --null -T - -cf - | tar -C "$TREE/opt/vmtest/src" -xf -
    # DHCP from qemu's user network, its DNS at 10.0.2.3.
    printf '[Match]\nName=en*\n[Network]\nDHCP=yes\n' >"$TREE/etc/systemd/network/10-vm.network"
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$TREE/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    echo 'nameserver 10.0.2.3' >"$TREE/etc/resolv.conf"
fi
cat >"$TREE/etc/systemd/system/vmtest.service" <<'UNIT'
[Unit]
Description=wb-mqtt-bridge VM checks (scripts/vm-test.sh)
After=mosquitto.service
[Service]
Type=simple
ExecStart=/opt/vmtest/checks.sh
StandardOutput=journal
StandardError=journal
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/vmtest.service "$TREE/etc/systemd/system/multi-user.target.wants/vmtest.service"
# Quiet console: no login prompt on the serial line; docker only for --docker.
MASK="serial-getty@ttyS0.service getty@tty1.service"
[ "$MODE" = docker ] || MASK+=" docker.service docker.socket containerd.service"
for u in $MASK; do
    ln -sf /dev/null "$TREE/etc/systemd/system/$u"
done
IMG=$RUN/disk.img
mkfs.ext4 -q -F -L wbmbvm -d "$TREE" "$IMG" "$DISK_SIZE"
rm -rf "$TREE"
log "disk image $IMG ($((SECONDS - t_img)) s)"

# ---- boot ----------------------------------------------------------------------
KERNEL=$(tar -tf "$BASE_TAR" | grep -E '^\./boot/vmlinuz-' | sort | tail -n1)
INITRD=$(tar -tf "$BASE_TAR" | grep -E '^\./boot/initrd\.img-' | sort | tail -n1)
tar -C "$RUN" -xf "$BASE_TAR" "$KERNEL" "$INITRD"
CONSOLE=$RUN/console.log
: >"$CONSOLE"
t_boot=$SECONDS
log "booting the VM (TCG), console in $CONSOLE, up to $VM_TIMEOUT_S s"
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$MEM" \
    -display none -monitor none -serial "file:$CONSOLE" -no-reboot \
    -kernel "$RUN/$KERNEL" -initrd "$RUN/$INITRD" \
    -append "root=/dev/vda rw console=ttyS0 systemd.show_status=error $KARGS" \
    -drive "file=$IMG,format=raw,if=virtio" -nic "$NIC" &
QEMU=$!
trap 'kill "$QEMU" 2>/dev/null || true' EXIT
timed_out=0
while kill -0 "$QEMU" 2>/dev/null; do
    if [ $((SECONDS - t_boot)) -ge "$VM_TIMEOUT_S" ]; then
        log "timeout after $VM_TIMEOUT_S s: killing qemu ($QEMU)"
        timed_out=1
        kill "$QEMU"
        break
    fi
    # After `VMTEST done` the guest powers off; allow it 120 s for that.
    if grep -aq 'VMTEST done' "$CONSOLE" && [ -z "${done_at:-}" ]; then done_at=$SECONDS; fi
    if [ -n "${done_at:-}" ] && [ $((SECONDS - done_at)) -ge 120 ]; then
        log "the guest did not power off: killing qemu"
        kill "$QEMU"
        break
    fi
    sleep 1
done
wait "$QEMU" 2>/dev/null || true
trap - EXIT
t_vm=$((SECONDS - t_boot))

# ---- results -------------------------------------------------------------------------
CHECKS=(install start_active reload journal_priority stop_flush security invalid_config
    kill9_restart watchdog upgrade purge)
[ "$MODE" = docker ] && CHECKS=(network docker_import docker_build compose_up_healthy
    docker_stop_flush new_container_restores)
RES=$VM_DIR/$RESULTS_NAME-results.md
LINES=$(tr -d '\r' <"$CONSOLE" | grep -ao 'VMTEST .*' || true)
grep -ao 'VMTESTLOG .*' "$CONSOLE" | tr -d '\r' >"$VM_DIR/$RESULTS_NAME-log.txt" || true
cp "$CONSOLE" "$VM_DIR/$RESULTS_NAME-console.log"
all_ok=1
{
    echo "VM test of $(basename "$DEB") ($(date -u '+%Y-%m-%d %H:%M UTC')): Debian 12 guest," \
        "qemu TCG -smp 2 -m $MEM, network: $NIC; VM ${t_vm} s, whole run $((SECONDS - t_start)) s."
    echo
    sed -n 's/^VMTEST start /Guest: /p; s/^VMTEST info /Guest: /p' <<<"$LINES" | sed 's/$/  /'
    echo
    echo "| check | result | detail |"
    echo "|---|---|---|"
    for c in "${CHECKS[@]}"; do
        l=$(grep -E "^VMTEST (ok|fail) $c( |$)" <<<"$LINES" | head -n1 || true)
        if [ -z "$l" ]; then
            r=missing
            d="no result line$([ $timed_out = 1 ] && echo " (timeout)")"
        else
            r=$(awk '{print $2}' <<<"$l")
            d=$(cut -d' ' -f4- <<<"$l" | sed 's/|/\\|/g')
        fi
        [ "$r" = ok ] || all_ok=0
        echo "| $c | $r | $d |"
    done
} >"$RES"
cat "$RES"
log "table in $RES; console in $VM_DIR/$RESULTS_NAME-console.log, extra output in $VM_DIR/$RESULTS_NAME-log.txt"
[ $all_ok = 1 ]
