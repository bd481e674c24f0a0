#!/usr/bin/env bash
# Devices/testvm/run.sh: boot the kiosk-agent test VM and run one script inside it.
#
# Usage: run.sh [options] -- SCRIPT [ARGS...]
#   SCRIPT runs as root in the guest, whose / is the host's / (read-only 9p under an overlay
#   with a tmpfs upper layer), in the host's current directory. Its stdout/stderr go to the
#   serial console. It may source Devices/testvm/guest/lib.sh ($TESTVM_LIB).
#
# Options:
#   --timeout SEC        kill qemu and fail after SEC seconds (default 300)
#   --net-forward HOSTPORT[:GUESTADDR:GUESTPORT]
#                        give the guest a virtio NIC on qemu user networking with restrict=on;
#                        a connection to GUESTADDR:GUESTPORT (default 10.0.2.100:HOSTPORT) is
#                        relayed to 127.0.0.1:HOSTPORT on the host. Nothing else is reachable.
#                        May be repeated. Without it the guest has no NIC at all.
#   --disk IMG           raw ext4 state disk on virtio-blk (/dev/vda in the guest)
#   --mkdisk SIZE        (re)create IMG afresh: SIZE bytes (truncate syntax, e.g. 64M), ext4
#   --kill-on MARKER     SIGKILL qemu the moment the console prints a line containing MARKER
#                        after the script started (a power cut)
#   --work DIR           read-write share mounted at /work-share (default: a new folder in the
#                        run's log folder); run.sh keeps its control files in DIR/.testvm
#   --mem SIZE           guest memory (default 1G)
#   --smp N              guest CPUs (default: the host's, at most 2)
#   --append ARGS        extra kernel command-line arguments
#   --accel auto|tcg|kvm KVM only when kvm_intel/kvm_amd is loaded (auto, the default)
#   --verbose            copy the console to stderr as it arrives
#   --kernel-log         do not pass 'quiet' to the kernel
#
# Prints "testvm: boot-to-script S s" (qemu start -> console marker of the script starting) and
# the console log path to stderr. Exit status: the script's own, or
#   124  timeout (qemu killed)
#   125  the VM failed before or after the script (init failure, panic, no status recorded)
#   137  power cut: --kill-on MARKER was seen and qemu was SIGKILLed
#   2    usage error
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}
RC_TIMEOUT=124
RC_VMFAIL=125
RC_POWERCUT=137

usage() { sed -n '2,36p' "$0" >&2; exit 2; }
say() { echo "testvm: $*" >&2; }

TIMEOUT=300
NETFWD=()
DISK=
MKDISK=
KILL_ON=
WORK=
MEM=1G
SMP=$(($(nproc) < 2 ? $(nproc) : 2))
APPEND_EXTRA=
ACCEL=auto
VERBOSE=0
KLOG=0
while [ $# -gt 0 ]; do
    case "$1" in
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --net-forward) NETFWD+=("${2:?}"); shift 2 ;;
    --disk) DISK=${2:?}; shift 2 ;;
    --mkdisk) MKDISK=${2:?}; shift 2 ;;
    --kill-on) KILL_ON=${2:?}; shift 2 ;;
    --work) WORK=${2:?}; shift 2 ;;
    --mem) MEM=${2:?}; shift 2 ;;
    --smp) SMP=${2:?}; shift 2 ;;
    --append) APPEND_EXTRA=${2:?}; shift 2 ;;
    --accel) ACCEL=${2:?}; shift 2 ;;
    --verbose) VERBOSE=1; shift ;;
    --kernel-log) KLOG=1; shift ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
    esac
done
[ $# -ge 1 ] || usage
SCRIPT=$1
shift
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || { echo "run.sh: --timeout takes whole seconds" >&2; exit 2; }
[ -f "$SCRIPT" ] || { echo "run.sh: no such script: $SCRIPT" >&2; exit 2; }
SCRIPT=$(realpath "$SCRIPT")
[ -z "$MKDISK" ] || [ -n "$DISK" ] || { echo "run.sh: --mkdisk needs --disk IMG" >&2; exit 2; }

"$HERE/setup.sh" --quiet
# shellcheck disable=SC1091
. "$CACHE/current.env"

# One folder per run under the cache (the last 20 are kept): console log, qemu's stderr and,
# unless --work is given, the work share.
mkdir -p "$CACHE/runs"
RUNDIR=$(mktemp -d "$CACHE/runs/$(date +%Y%m%d-%H%M%S).XXXX")
ls -1dt "$CACHE"/runs/*/ 2>/dev/null | tail -n +21 | xargs -r rm -rf
LOG=$RUNDIR/console.log
[ -n "$WORK" ] || WORK=$RUNDIR/work
mkdir -p "$WORK/.testvm"
WORK=$(realpath "$WORK")
rm -f "$WORK/.testvm/status" "$WORK/.testvm/status.tmp"

# The command file the guest's init runs with /bin/sh: same cwd as here, the script, its args.
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; } # POSIX single-quoting
{
    echo "# written by run.sh"
    echo "export TESTVM_REPO=$(shq "$REPO") TESTVM_LIB=$(shq "$HERE/guest/lib.sh")"
    echo "export TESTVM_KVER=$(shq "$TESTVM_KVER") TESTVM_UDEVROOT=$(shq "$TESTVM_UDEVROOT")"
    echo "cd $(shq "$PWD") 2>/dev/null || cd /"
    if [ -x "$SCRIPT" ]; then printf 'exec %s' "$(shq "$SCRIPT")"; else printf 'exec /bin/sh %s' "$(shq "$SCRIPT")"; fi
    for a in "$@"; do printf ' %s' "$(shq "$a")"; done
    echo
} >"$WORK/.testvm/cmd"

if [ -n "$MKDISK" ]; then
    rm -f "$DISK"
    truncate -s "$MKDISK" "$DISK"
    mkfs.ext4 -q -F -L kiosk-state -E lazy_itable_init=0,lazy_journal_init=0 "$DISK"
fi
if [ -n "$DISK" ]; then
    [ -f "$DISK" ] || { echo "run.sh: no disk image $DISK (use --mkdisk SIZE)" >&2; exit 2; }
    DISK=$(realpath "$DISK")
fi

case "$ACCEL" in
auto) if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then ACCEL=kvm; else ACCEL=tcg; fi ;;
tcg | kvm) ;;
*) echo "run.sh: --accel auto|tcg|kvm" >&2; exit 2 ;;
esac
if [ "$ACCEL" = kvm ]; then CPU=(-accel kvm -cpu host); else CPU=(-accel tcg,thread=multi); fi

APPEND="console=ttyS0 panic=-1 cryptomgr.notests net.ifnames=0 testvm.moddir=$TESTVM_MODDIR"
[ "$KLOG" = 1 ] || APPEND="$APPEND quiet"
[ -z "$APPEND_EXTRA" ] || APPEND="$APPEND $APPEND_EXTRA"
case "$TESTVM_MODDIR" in *[[:space:]]*) echo "run.sh: cache path may not contain spaces" >&2; exit 2 ;; esac

QEMU=(qemu-system-x86_64 -machine pc "${CPU[@]}" -m "$MEM" -smp "$SMP"
    -nographic -no-reboot -vga none
    -kernel "$TESTVM_VMLINUX" -initrd "$TESTVM_INITRD" -append "$APPEND"
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -fsdev "local,id=work,path=$WORK,security_model=none,multidevs=remap"
    -device virtio-9p-pci,fsdev=work,mount_tag=work)
if [ -n "$DISK" ]; then
    QEMU+=(-drive "file=$DISK,format=raw,if=virtio,cache=writeback")
fi
if [ ${#NETFWD[@]} -gt 0 ]; then
    command -v socat >/dev/null || { echo "run.sh: --net-forward needs socat (setup.sh installs it)" >&2; exit 2; }
    NETDEV="user,id=net0,restrict=on,net=10.0.2.0/24,host=10.0.2.2"
    for f in "${NETFWD[@]}"; do
        IFS=: read -r hport gaddr gport extra <<<"$f"
        gaddr=${gaddr:-10.0.2.100}
        gport=${gport:-$hport}
        if [ -n "$extra" ] || ! [[ "$hport" =~ ^[0-9]+$ && "$gport" =~ ^[0-9]+$ ]] ||
            ! [[ "$gaddr" =~ ^10\.0\.2\.([0-9]+)$ ]] || [ "$gaddr" = 10.0.2.2 ] || [ "$gaddr" = 10.0.2.3 ] ||
            [ "$gaddr" = 10.0.2.15 ]; then
            echo "run.sh: bad --net-forward $f (HOSTPORT[:10.0.2.x:GUESTPORT], x not 2, 3 or 15)" >&2
            exit 2
        fi
        # The relay always targets the host's loopback: the guest can reach nothing else.
        NETDEV="$NETDEV,guestfwd=tcp:$gaddr:$gport-cmd:socat -lf /dev/null - TCP4:127.0.0.1:$hport"
    done
    QEMU+=(-netdev "$NETDEV" -device virtio-net-pci,netdev=net0)
else
    QEMU+=(-nic none)
fi
printf '%q ' "${QEMU[@]}" >"$RUNDIR/qemu.cmd"
echo >>"$RUNDIR/qemu.cmd"

# qemu's console goes through a FIFO to the reader loop below, which timestamps markers,
# implements --kill-on and --timeout, and writes the log.
FIFO=$RUNDIR/console.fifo
mkfifo "$FIFO"
QPID=
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill -9 "$QPID" 2>/dev/null || true; fi
    rm -f "$FIFO"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

now() { echo "${EPOCHREALTIME/[.,]/}"; } # microseconds
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }

T0=$(now)
"${QEMU[@]}" </dev/null >"$FIFO" 2>"$RUNDIR/qemu.stderr" &
QPID=$!
exec 3<"$FIFO"
DEADLINE=$((T0 + TIMEOUT * 1000000))
T_INIT= T_START= T_EXIT= OUTCOME= GUEST_RC=
: >"$LOG"
while :; do
    left=$((DEADLINE - $(now)))
    if [ "$left" -le 0 ]; then OUTCOME=timeout; break; fi
    printf -v left_s '%d.%06d' $((left / 1000000)) $((left % 1000000))
    if IFS= read -r -t "$left_s" line <&3; then
        line=${line%$'\r'}
        printf '%s\n' "$line" >>"$LOG"
        [ "$VERBOSE" = 0 ] || printf '%s\n' "$line" >&2
        case "$line" in
        *TESTVM-INIT-FAIL*) OUTCOME=initfail ;;
        *TESTVM-SCRIPT-START*) [ -n "$T_START" ] || T_START=$(now) ;;
        *TESTVM-SCRIPT-EXIT*) [ -n "$T_EXIT" ] || T_EXIT=$(now) ;;
        *TESTVM-INIT*) [ -n "$T_INIT" ] || T_INIT=$(now) ;;
        esac
        if [ -n "$KILL_ON" ] && [ -n "$T_START" ] && [ -z "$T_EXIT" ] && [[ "$line" == *"$KILL_ON"* ]]; then
            kill -9 "$QPID" 2>/dev/null || true
            OUTCOME=powercut
            T_EXIT=$(now)
            break
        fi
    else
        # EOF (qemu exited) or the read timed out (loop re-checks the deadline).
        rc=$?
        if [ "$rc" -le 128 ]; then break; fi
    fi
done
exec 3<&-
if [ "$OUTCOME" = timeout ]; then kill -9 "$QPID" 2>/dev/null || true; fi
QRC=0
wait "$QPID" 2>/dev/null || QRC=$?
QPID=
T_END=$(now)

[ -z "$T_INIT" ] || say "kernel-to-init $(secs $((T_INIT - T0))) s"
[ -z "$T_START" ] || say "boot-to-script $(secs $((T_START - T0))) s"
[ -z "$T_START" ] || [ -z "$T_EXIT" ] || say "script $(secs $((T_EXIT - T_START))) s"
say "total $(secs $((T_END - T0))) s, console log: $LOG"

case "$OUTCOME" in
timeout)
    say "TIMEOUT after ${TIMEOUT}s: qemu killed"
    tail -n 20 "$LOG" | sed 's/^/testvm:   | /' >&2
    exit $RC_TIMEOUT ;;
powercut)
    say "POWER CUT: console printed '$KILL_ON'; qemu SIGKILLed"
    exit $RC_POWERCUT ;;
esac
if [ -f "$WORK/.testvm/status" ]; then
    GUEST_RC=$(cat "$WORK/.testvm/status")
    [[ "$GUEST_RC" =~ ^[0-9]+$ ]] || { say "bad status '$GUEST_RC'"; exit $RC_VMFAIL; }
    say "script exit status $GUEST_RC"
    exit "$GUEST_RC"
fi
say "VM FAILED: no exit status recorded (qemu status $QRC)"
grep -h 'TESTVM-INIT-FAIL' "$LOG" | sed 's/^/testvm:   /' >&2 || true
tail -n 20 "$LOG" | sed 's/^/testvm:   | /' >&2
[ -s "$RUNDIR/qemu.stderr" ] && sed 's/^/testvm:   qemu: /' "$RUNDIR/qemu.stderr" >&2
exit $RC_VMFAIL
