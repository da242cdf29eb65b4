# lib.sh - sourced by the guest scripts of scripts/vm-test.sh (checks.sh,
# docker-checks.sh), which runs them at boot inside the VM: the result lines
# on the serial console and the condition waits they share.
#
#   VMTEST ok NAME detail | VMTEST fail NAME detail   one per check
#   VMTEST done failed=0|1                            at the end (vm_finish)

CON=/dev/ttyS0
# arm64 (qemu -M virt): the serial console is the PL011.
[ -e /dev/ttyAMA0 ] && CON=/dev/ttyAMA0
FAILED=0

say() { printf '%s\n' "$*" >"$CON"; printf '%s\n' "$*"; }
oneline() { tr '\n\t\r' '   ' | sed 's/  */ /g; s/[^ -~]//g' | cut -c1-400; }
# check NAME FUNCTION: the function returns 0/1 and leaves its detail in DETAIL.
check() {
    local name=$1 t0=$SECONDS
    DETAIL=""
    if "$2"; then
        say "VMTEST ok $name $(printf '%s' "$DETAIL" | oneline) ($((SECONDS - t0)) s)"
    else
        FAILED=1
        say "VMTEST fail $name $(printf '%s' "$DETAIL" | oneline) ($((SECONDS - t0)) s)"
    fi
}
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.2
    done
}
# The last line, then power off (the host waits for it).
vm_finish() {
    say "VMTEST done failed=$FAILED"
    sync
    systemctl poweroff --no-block
}
