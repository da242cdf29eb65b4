#!/usr/bin/env bash
# vm-test.sh - the Debian package under the real systemd, in a Debian 12 VM
# (qemu, TCG: no KVM needed). Not part of scripts/test.sh: it takes minutes.
#
#   ./scripts/vm-test.sh              # every check; exit 0 only if all pass
#   ./scripts/vm-test.sh --arch arm64 # the same checks, arm64 .deb, arm64 VM
#   ./scripts/vm-test.sh --power-cut  # ten power cuts under load (below)
#   ./scripts/vm-test.sh --docker     # the Docker image in the same VM (below)
#   ./scripts/vm-test.sh --base-only  # only build the cached base tarball(s)
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
#
# --power-cut: one image booted VM_CUTS (10) + 1 times, with -nic user and
# two hostfwd ports (the guest's mosquitto, the bridge's HTTP API). Each
# boot runs tests/vm/powercut.sh: integrity_check and the stored seq on a
# copy of the database the last cut left, then the bridge started on it and
# the restored state read back. The host then runs tests/vm/powercut_load.py:
# 200 msg/s QoS 1 of increasing sequence numbers for a random 3-20 s while it
# polls the bridge's GET /devices/cut/state, then SIGKILL of qemu. The
# guest's page cache is lost with qemu; ext4 commits only on fsync
# (commit=600) and no timer writes dirty pages back, so what the bridge did
# not fsync is lost as with the worst disk cache. The promise checked: every
# seq the bridge had served over HTTP more than commit_interval_ms +
# sync_interval_ms (1.1 s) before the cut is in the database after it.
# Results in build-vm/vm-test-power-cut-results.md.
#
# --arch arm64: an arm64 base (debootstrap --arch=arm64; the second stage
# runs under qemu-aarch64 through binfmt_misc, which the script mounts and
# registers if needed), the .deb from `scripts/package.sh --arch arm64`,
# qemu-system-aarch64 -M virt -cpu cortex-a57 (TCG) with -kernel/-initrd (no
# firmware), the same tests/vm/checks.sh. Results in
# build-vm/vm-test-arm64-results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VM_DIR=${VM_DIR:-$ROOT/build-vm}
MODE=vm
ARCH=amd64
BASE_ONLY=0
usage() { echo "usage: $0 [--arch amd64|arm64] [--docker|--power-cut] [--base-only]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --base-only) BASE_ONLY=1 ;;
        --docker) MODE=docker ;;
        --power-cut) MODE=powercut ;;
        --arch) ARCH=${2:-}; shift ;;
        --arch=*) ARCH=${1#--arch=} ;;
        *) usage ;;
    esac
    shift
done
case "$ARCH" in
    amd64) QEMU_SYS=qemu-system-x86_64 ;;
    arm64) QEMU_SYS=qemu-system-aarch64 ;;
    *) echo "vm-test.sh: --arch $ARCH is not supported (amd64, arm64; see the README for armhf)" >&2; exit 2 ;;
esac
# arm64 under TCG is several times slower than amd64.
if [ "$ARCH" = arm64 ]; then VM_TIMEOUT_S=${VM_TIMEOUT_S:-2700}; else VM_TIMEOUT_S=${VM_TIMEOUT_S:-900}; fi
[ "$ARCH" = amd64 ] || [ "$MODE" = vm ] ||
    { echo "vm-test.sh: --docker and --power-cut run on amd64 only" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || { echo "vm-test.sh: run as root (debootstrap, file owners in the image)" >&2; exit 1; }
"$ROOT/scripts/deps-vm.sh"

# Runtime dependencies of the .deb (dpkg-deb -I: Depends), installed in the
# base because the guest has no network.
# libpq5: the PostgreSQL sink's client library (the .deb depends on it).
# docker.io only in the amd64 base (--docker runs there).
INCLUDE=systemd,systemd-sysv,dbus,linux-image-$ARCH,udev,iproute2,procps,kmod
INCLUDE+=,mosquitto,mosquitto-clients,curl,sqlite3,jq,ca-certificates
INCLUDE+=,libpaho-mqtt1.3,libsqlite3-0,libjson-c5,libyaml-0-2,libmicrohttpd12,libuuid1,libpq5
[ "$ARCH" = amd64 ] && INCLUDE+=,docker.io
KEY=$(printf '%s' "bookworm $ARCH $INCLUDE" | sha256sum | cut -c1-12)
BASE_TAR=$VM_DIR/base/bookworm-$ARCH-$KEY.tar

log() { echo "vm-test.sh: $*" >&2; }

# arm64 on this amd64 host: debootstrap's second stage runs the arm64
# maintainer scripts, through qemu-aarch64 registered in binfmt_misc (with
# the F flag: the interpreter is opened at registration, nothing is copied
# into the tree). Mounts binfmt_misc and registers the handler when missing.
foreign_exec() {
    local bf=/proc/sys/fs/binfmt_misc
    [ -e $bf/register ] || mount -t binfmt_misc binfmt_misc $bf ||
        { log "binfmt_misc cannot be mounted: no arm64 debootstrap on this host"; exit 1; }
    [ -e $bf/qemu-aarch64 ] || grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf >$bf/register
    [ -e $bf/qemu-aarch64 ] || { log "qemu-aarch64 not registered in binfmt_misc"; exit 1; }
}

build_base() {
    [ -s "$BASE_TAR" ] && return 0
    local tree=$VM_DIR/base/tree.$$
    mkdir -p "$VM_DIR/base"
    rm -rf "$tree"
    [ -n "${VM_BASE_TREE:-}" ] || log "debootstrap bookworm $ARCH into $tree (a few minutes, once; arm64 longer, its second stage runs under qemu-user)"
    local t0=$SECONDS
    [ "$ARCH" = amd64 ] || foreign_exec
    if [ -n "${VM_BASE_TREE:-}" ]; then
        # A debootstrap tree finished by hand (e.g. a run stopped after its
        # debootstrap): only the steps below.
        tree=$VM_BASE_TREE
    elif [ "$ARCH" = amd64 ]; then
        debootstrap --variant=minbase --include="$INCLUDE" bookworm "$tree" \
            http://deb.debian.org/debian >"$VM_DIR/base/debootstrap-$ARCH.log" 2>&1 ||
            { log "debootstrap failed, see $VM_DIR/base/debootstrap-$ARCH.log"; tail -20 "$VM_DIR/base/debootstrap-$ARCH.log" >&2; exit 1; }
    else
        # Two stages, so that the initramfs configuration is in place before
        # the kernel's postinst builds the initrd: under qemu-user
        # mkinitramfs with MODULES=most takes over 20 min (thousands of short
        # processes, each one emulated); MODULES=list (the virtio and ext4
        # modules below) takes a minute or two.
        debootstrap --arch="$ARCH" --foreign --variant=minbase --include="$INCLUDE" bookworm "$tree" \
            http://deb.debian.org/debian >"$VM_DIR/base/debootstrap-$ARCH.log" 2>&1 ||
            { log "debootstrap (first stage) failed, see $VM_DIR/base/debootstrap-$ARCH.log"; exit 1; }
        mkdir -p "$tree/etc/initramfs-tools/conf.d"
        printf '# vm-test.sh: only the modules of ../modules\nMODULES=list\n' \
            >"$tree/etc/initramfs-tools/conf.d/vmtest.conf"
        printf 'virtio_pci\nvirtio_mmio\nvirtio_blk\next4\n' >>"$tree/etc/initramfs-tools/modules"
        chroot "$tree" /debootstrap/debootstrap --second-stage >>"$VM_DIR/base/debootstrap-$ARCH.log" 2>&1 ||
            { log "debootstrap (second stage) failed, see $VM_DIR/base/debootstrap-$ARCH.log"; tail -20 "$VM_DIR/base/debootstrap-$ARCH.log" >&2; exit 1; }
    fi
    # The guest's block device is virtio: make sure the initrd has its driver.
    if [ "$ARCH" = amd64 ]; then
        printf 'virtio_pci\nvirtio_mmio\nvirtio_blk\next4\n' >>"$tree/etc/initramfs-tools/modules"
        chroot "$tree" update-initramfs -u -k all >>"$VM_DIR/base/debootstrap-$ARCH.log" 2>&1
    fi
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
[ "$MODE" = docker ] && build_docker_base
[ $BASE_ONLY = 1 ] && exit 0
if [ "$MODE" = docker ]; then
    VM_TIMEOUT_S=${VM_TIMEOUT_S_DOCKER:-2700}
    DISK_SIZE=16G MEM=3072 NIC="user,model=virtio-net-pci"
    GUEST_SCRIPT=docker-checks.sh RESULTS_NAME=vm-test-docker
    # The kernel has AppArmor on but the base has no apparmor_parser
    # (docker.io only recommends apparmor), so dockerd cannot load its
    # docker-default profile and every RUN fails: boot without AppArmor.
    KARGS="apparmor=0"
elif [ "$MODE" = powercut ]; then
    # Two loopback ports on the host forwarded to the guest's broker and to
    # the bridge's HTTP API (qemu user-mode networking).
    free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    MPORT=$(free_port) HPORT=$(free_port)
    DISK_SIZE=3G MEM=1536 GUEST_SCRIPT=powercut.sh RESULTS_NAME=vm-test-power-cut
    NIC="user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$MPORT-:1883,hostfwd=tcp:127.0.0.1:$HPORT-:8080"
    # ext4's journal commits only when something fsyncs (commit=600 s), and
    # the guest's page cache is never written back on a timer (sysctl file
    # below): what the bridge did not fsync stays in the guest's RAM, which
    # the kill of qemu loses. The worst disk cache a power cut can meet.
    KARGS="rootflags=commit=600"
else
    DISK_SIZE=3G MEM=1536 NIC=none GUEST_SCRIPT=checks.sh RESULTS_NAME=vm-test KARGS=""
    [ "$ARCH" = amd64 ] || RESULTS_NAME=vm-test-$ARCH
fi

# ---- the packages ----------------------------------------------------------
# One work folder per mode and architecture: runs of different modes can
# share the machine.
RUN=$VM_DIR/run
[ "$MODE-$ARCH" = vm-amd64 ] || RUN=$VM_DIR/run-$MODE-$ARCH
rm -rf "$RUN"
mkdir -p "$RUN"
t_start=$SECONDS
DEB=$(PKG_OUT_DIR=$RUN "$ROOT/scripts/package.sh" --arch "$ARCH" | tail -n1)
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
DEB2=$RUN/wb-mqtt-bridge_${NEWVER}_${ARCH}.bumped.deb
dpkg-deb --root-owner-group -b "$RUN/repack" "$DEB2" >/dev/null
rm -rf "$RUN/repack"
log "packages: $(basename "$DEB") and $(basename "$DEB2") ($((SECONDS - t_start)) s)"

# ---- the guest's disk --------------------------------------------------------
t_img=$SECONDS
TREE=$RUN/root
mkdir -p "$TREE"
tar -C "$TREE" --numeric-owner -xf "$BASE_TAR"
# The checks reach the broker as localhost. /etc/hosts comes from netbase,
# which only docker.io pulls into the amd64 base: without it (arm64)
# mosquitto_pub failed with "Lookup error".
[ -s "$TREE/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$TREE/etc/hosts"
install -d "$TREE/opt/vmtest"
install -m 0644 "$DEB" "$DEB2" "$TREE/opt/vmtest/"
install -m 0755 "$ROOT/tests/vm/$GUEST_SCRIPT" "$TREE/opt/vmtest/checks.sh"
install -m 0644 "$ROOT/tests/vm/lib.sh" "$TREE/opt/vmtest/lib.sh"
if [ "$MODE" = powercut ]; then
    printf '[Match]\nName=en*\n[Network]\nDHCP=yes\n' >"$TREE/etc/systemd/network/10-vm.network"
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$TREE/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    # The host publishes into the guest's broker through the hostfwd.
    printf 'listener 1883\nallow_anonymous true\n' >"$TREE/etc/mosquitto/conf.d/vmtest.conf"
    printf 'vm.dirty_writeback_centisecs = 0\nvm.dirty_expire_centisecs = 360000\n' \
        >"$TREE/etc/sysctl.d/90-vmtest-powercut.conf"
fi
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
MASK="serial-getty@ttyS0.service serial-getty@ttyAMA0.service getty@tty1.service"
[ "$MODE" = docker ] || MASK+=" docker.service docker.socket containerd.service"
for u in $MASK; do
    ln -sf /dev/null "$TREE/etc/systemd/system/$u"
done
IMG=$RUN/disk.img
[ "$MODE" = powercut ] && install -m 0755 "$ROOT/tests/vm/powercut.sh" "$TREE/opt/vmtest/checks.sh"
mkfs.ext4 -q -F -L wbmbvm -d "$TREE" "$IMG" "$DISK_SIZE"
rm -rf "$TREE"
log "disk image $IMG ($((SECONDS - t_img)) s)"

# ---- boot ----------------------------------------------------------------------
KERNEL=$(tar -tf "$BASE_TAR" | grep -E '^\./boot/vmlinuz-' | sort | tail -n1)
INITRD=$(tar -tf "$BASE_TAR" | grep -E '^\./boot/initrd\.img-' | sort | tail -n1)
tar -C "$RUN" -xf "$BASE_TAR" "$KERNEL" "$INITRD"
# boot_vm CONSOLE: starts qemu on $IMG in the background, its pid in QEMU.
# The drive is cache=writeback, qemu's default, named: the guest's flushes
# become fdatasync on the image file, and what qemu has written survives
# qemu (the host is not cut). So a SIGKILL of qemu loses exactly the guest's
# RAM: its page cache and what ext4 had not committed, as in a power cut.
# cache=none or directsync would change nothing there (they only bypass the
# HOST page cache, which outlives qemu anyway).
boot_vm() {
    local con=$1
    : >"$con"
    if [ "$ARCH" = arm64 ]; then
        # No firmware with -kernel; cortex-a57: no pointer authentication,
        # which -cpu max emulates slowly under TCG. The serial line is a PL011.
        qemu-system-aarch64 -M virt -accel tcg,thread=multi -cpu cortex-a57 -smp 2 -m "$MEM" \
            -display none -monitor none -serial "file:$con" -no-reboot \
            -kernel "$RUN/$KERNEL" -initrd "$RUN/$INITRD" \
            -append "root=/dev/vda rw console=ttyAMA0 systemd.show_status=error $KARGS" \
            -drive "file=$IMG,format=raw,if=virtio,cache=writeback" -nic "$NIC" &
    else
        qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$MEM" \
            -display none -monitor none -serial "file:$con" -no-reboot \
            -kernel "$RUN/$KERNEL" -initrd "$RUN/$INITRD" \
            -append "root=/dev/vda rw console=ttyS0 systemd.show_status=error $KARGS" \
            -drive "file=$IMG,format=raw,if=virtio,cache=writeback" -nic "$NIC" &
    fi
    QEMU=$!
}
# ---- --power-cut -----------------------------------------------------------------
# power_cuts: boots the same image VM_CUTS + 1 times. Each boot runs
# tests/vm/powercut.sh (the check of the database the last cut left, then the
# bridge started on it) and prints `VMTEST ready ...`; the host then runs
# tests/vm/powercut_load.py: 200 msg/s of increasing sequence numbers for a
# random 3-20 s (VM_CUT_SEED makes the draw repeatable), then SIGKILL of qemu.
# The next boot judges that cut. Writes the table and exits.
power_cuts() {
    local cuts=${VM_CUTS:-10} seed=${VM_CUT_SEED:-$$} i line last=0 json=""
    local t_all=$SECONDS rows="" all_ok=1 first_ready=""
    RANDOM=$seed
    for ((i = 0; i <= cuts; i++)); do
        local con=$RUN/console-$i.log t_b=$SECONDS
        boot_vm "$con"
        trap 'kill "$QEMU" 2>/dev/null || true' EXIT
        line=""
        while kill -0 "$QEMU" 2>/dev/null && [ $((SECONDS - t_b)) -lt "$VM_TIMEOUT_S" ]; do
            line=$(tr -d '\r' <"$con" | grep -aoE 'VMTEST (ready|fail) .*' | head -n1 || true)
            [ -n "$line" ] && break
            sleep 1
        done
        local boot_s=$((SECONDS - t_b))
        cp "$con" "$VM_DIR/$RESULTS_NAME-console-$i.log"
        [ -n "$line" ] || line="VMTEST fail no ready line within $boot_s s (qemu $(kill -0 "$QEMU" 2>/dev/null && echo running || echo exited))"
        log "boot $i (${boot_s} s): $line"
        [ $i -eq 0 ] && first_ready="$line"
        kv() { grep -oE "(^| )$1=[^ ]*" <<<"$line" | head -n1 | cut -d= -f2-; }
        if [ $i -gt 0 ]; then
            # Judge cut i with what the load saw before it.
            local acked seen req run_s stored integ restored start errs corrupt active wal lost lost_ms v=ok why=""
            acked=$(jq -r .acked <<<"$json") seen=$(jq -r .seen <<<"$json")
            req=$(jq -r .required <<<"$json") run_s=$(jq -r .run_s <<<"$json")
            local slag smax dlag cmax kmax
            slag=$(jq -r .sync_lag_ms <<<"$json") smax=$(jq -r .sync_max_ms <<<"$json")
            cmax=$(jq -r .commit_max_ms <<<"$json") kmax=$(jq -r .checkpoint_max_ms <<<"$json")
            dlag=$(jq -r .durable_lag_max_ms <<<"$json")
            stored=$(kv stored) integ=$(kv integrity) restored=$(kv restored) start=$(kv start)
            errs=$(kv errors) corrupt=$(kv corrupt_files) active=$(kv active) wal=$(kv wal)
            [ "$req" = null ] && req=0
            [ "$seen" = null ] && seen=0
            if [[ "$stored" =~ ^[0-9]+$ ]]; then
                lost=$((seen - stored))
                lost_ms=$(/usr/bin/python3 "$ROOT/tests/vm/powercut_load.py" --report "$RUN/cut-$i.json" --stored "$stored")
                [ "$stored" -ge "$req" ] || { v=fail; why+=" stored<bound"; }
                [ "$stored" -le "$last" ] || { v=fail; why+=" stored>published"; }
            else
                lost=? lost_ms=?
                v=fail why+=" no stored seq"
            fi
            [ "$integ" = ok ] || { v=fail; why+=" integrity"; }
            [ "$restored" = "$stored" ] || { v=fail; why+=" restored=$restored"; }
            [ "$start" = ok ] && [ "$active" = active ] || { v=fail; why+=" start=$start/$active"; }
            [ "$corrupt" = 0 ] || { v=fail; why+=" moved aside as corrupt"; }
            [ "$errs" = none ] || { v=fail; why+=" journal errors"; }
            grep -q '^VMTEST ready' <<<"$line" || { v=fail; why=" ${line#VMTEST }"; }
            [ $v = ok ] || all_ok=0
            rows+="| $i | $run_s | $acked | $seen | $stored | $lost | $lost_ms | $req | $slag | $dlag | $smax | $cmax | $kmax | $wal | $integ | $restored | ${boot_s} | $v${why:+ ($why )} |"$'\n'
        fi
        grep -q '^VMTEST ready' <<<"$line" || { kill "$QEMU" 2>/dev/null; wait "$QEMU" 2>/dev/null; break; }
        if [ $i -lt "$cuts" ]; then
            local dur=$((3 + RANDOM % 18)) from
            from=$(kv stored)
            [[ "$from" =~ ^[0-9]+$ ]] || from=0
            [ "$last" -gt "$from" ] && from=$last
            json=$(/usr/bin/python3 "$ROOT/tests/vm/powercut_load.py" --mqtt-port "$MPORT" --http-port "$HPORT" \
                --qemu-pid "$QEMU" --start $((from + 1)) --duration "$dur" --rate "${VM_CUT_RATE:-200}" |
                tee "$RUN/cut-$((i + 1)).json") || { log "the load of cut $((i + 1)) failed"; kill "$QEMU" 2>/dev/null; }
            last=$(jq -r .published <<<"$json")
            log "cut $((i + 1)) after $dur s: $(jq -c 'del(.seen_ms)' <<<"$json")"
        else
            kill "$QEMU" 2>/dev/null
        fi
        wait "$QEMU" 2>/dev/null || true
        trap - EXIT
    done
    local done_cuts
    done_cuts=$(grep -c . <<<"$rows" || true)
    [ "$done_cuts" -eq "$cuts" ] || all_ok=0
    local res=$VM_DIR/$RESULTS_NAME-results.md
    {
        echo "Power cuts of $(basename "$DEB") ($(date -u '+%Y-%m-%d %H:%M UTC')): Debian 12 guest, qemu TCG" \
            "-smp 2 -m $MEM, SIGKILL of qemu under ${VM_CUT_RATE:-200} msg/s QoS 1; $done_cuts of $cuts cuts" \
            "(seed $seed), whole run $((SECONDS - t_all)) s."
        echo
        echo "Guest: ${first_ready#VMTEST }  "
        echo
        echo "| cut | load s | sent (PUBACK) | applied (HTTP) | stored | lost | lost ms | bound: stored >= | sync lag ms | durable lag max ms | sync max ms | commit max ms | checkpoint max ms | WAL bytes | integrity | restored | boot s | verdict |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        printf '%s' "$rows"
    } >"$res"
    cat "$res"
    log "table in $res; consoles in $VM_DIR/$RESULTS_NAME-console-*.log"
    [ $all_ok = 1 ]
    exit
}

[ "$MODE" = powercut ] && power_cuts
CONSOLE=$RUN/console.log
t_boot=$SECONDS
log "booting the $ARCH VM ($QEMU_SYS, TCG), console in $CONSOLE, up to $VM_TIMEOUT_S s"
boot_vm "$CONSOLE"
trap 'kill "$QEMU" 2>/dev/null || true' EXIT
timed_out=0
while kill -0 "$QEMU" 2>/dev/null; do
    if [ $((SECONDS - t_boot)) -ge "$VM_TIMEOUT_S" ]; then
        log "timeout after $VM_TIMEOUT_S s: killing qemu ($QEMU)"
        timed_out=1
        kill "$QEMU"
        break
    fi
    if [ -z "${start_at:-}" ] && grep -aq 'VMTEST start' "$CONSOLE"; then start_at=$((SECONDS - t_boot)); fi
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
    echo "VM test of $(basename "$DEB") ($(date -u '+%Y-%m-%d %H:%M UTC')): Debian 12 $ARCH guest, $QEMU_SYS" \
        "TCG -smp 2 -m $MEM, network: $NIC; booted to the checks in ${start_at:-?} s, VM ${t_vm} s, whole run $((SECONDS - t_start)) s."
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
