#!/usr/bin/env bash
# Devices/testvm/selftest.sh: prove the test VM and the device code against the kernel's drivers.
#   set-up -> build vm-selfcheck -> boot 1 (state disk write, power cut) -> boot 2 (disk after
#   the cut, vivid V4L2 loop, FunctionFS USB device + libusb host + hotplug, network isolation)
# Prints a PASS/FAIL line per check and each boot's boot-to-test time; exits non-zero on any
# failure. Run from anywhere; paths are resolved from this file.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}
cd "$REPO" || exit 1

T_ALL=${EPOCHREALTIME/[.,]/}
elapsed() { local t=${EPOCHREALTIME/[.,]/}; printf '%d.%d' $(((t - $1) / 1000000)) $(((t - $1) % 1000000 / 100000)); }
results=()
fails=0
record() { # STATUS NAME DETAIL
    results+=("$(printf '%-4s %-26s %s' "$1" "$2" "$3")")
    [ "$1" = FAIL ] && fails=$((fails + 1))
    printf 'selftest: %-4s %-26s %s\n' "$1" "$2" "$3"
}

t=${EPOCHREALTIME/[.,]/}
if "$HERE/setup.sh"; then record PASS setup "$(elapsed "$t") s"; else record FAIL setup "setup.sh failed"; exit 1; fi

t=${EPOCHREALTIME/[.,]/}
if swift build --product vm-selfcheck --scratch-path .build-vm >"$CACHE/selftest-build.log" 2>&1; then
    record PASS build-vm-selfcheck "$(elapsed "$t") s"
else
    tail -n 30 "$CACHE/selftest-build.log"
    record FAIL build-vm-selfcheck "swift build failed (log: $CACHE/selftest-build.log)"
    exit 1
fi
BIN=$REPO/.build-vm/debug/vm-selfcheck
[ -x "$BIN" ] || { record FAIL build-vm-selfcheck "no $BIN"; exit 1; }

ST=$(mktemp -d "$CACHE/selftest.XXXXXX")
TOKEN=kiosk-$RANDOM$RANDOM
DISK=$ST/state.img

# A TCP echo server on the host's loopback (bounded: 20 connections or 240 s).
python3 -u - >"$ST/echo.port" 2>"$ST/echo.err" <<'EOF' &
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
end = time.monotonic() + 240
for _ in range(20):
    left = end - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        c, _ = s.accept()
    except socket.timeout:
        break
    with c:
        c.settimeout(10)
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = c.recv(1024)
                if not chunk:
                    break
                data += chunk
            c.sendall(data)
        except OSError:
            pass
EOF
ECHO_PID=$!
trap 'kill $ECHO_PID 2>/dev/null' EXIT
for _ in $(seq 50); do [ -s "$ST/echo.port" ] && break; sleep 0.1; done
ECHO_PORT=$(head -1 "$ST/echo.port")
[[ "$ECHO_PORT" =~ ^[0-9]+$ ]] || { record FAIL echo-server "no port ($(cat "$ST/echo.err"))"; exit 1; }

boot() { # NAME EXPECTED_RC run.sh-args... ; sets BOOT_RC, prints boot-to-test time
    local name=$1 expect=$2
    shift 2
    local t=${EPOCHREALTIME/[.,]/}
    "$HERE/run.sh" "$@" 2>"$ST/$name.run"
    BOOT_RC=$?
    local b2s total log
    b2s=$(sed -n 's/^testvm: boot-to-script \(.*\) s$/\1/p' "$ST/$name.run")
    log=$(sed -n 's/.*console log: //p' "$ST/$name.run")
    total=$(elapsed "$t")
    echo "selftest: boot $name: boot-to-test ${b2s:-?} s, whole boot ${total} s, exit $BOOT_RC (log $log)"
    BOOTS+=("$name: boot-to-test ${b2s:-?} s, whole boot $total s")
    if [ "$BOOT_RC" != "$expect" ] && [ "$expect" != any ]; then
        sed 's/^/selftest:   /' "$ST/$name.run" | tail -n 25
        tail -n 40 "$log" 2>/dev/null | sed 's/^/selftest:   | /'
    fi
}
BOOTS=()

# Boot 1: fsync'd + plain writes on a fresh state disk, then the power cut.
boot powercut 137 --timeout 120 --disk "$DISK" --mkdisk 64M --kill-on TESTVM-POWERCUT-NOW \
    --work "$ST/w1" -- Devices/testvm/tests/powercut-write.sh "$TOKEN"
if [ "$BOOT_RC" = 137 ]; then
    record PASS powercut-kill "qemu SIGKILLed on the console marker"
else
    record FAIL powercut-kill "run.sh exit $BOOT_RC, expected 137 (power cut)"
fi

# Boot 2: everything else.
boot selfchecks any --timeout 240 --disk "$DISK" --net-forward "$ECHO_PORT:10.0.2.100:7000" \
    --work "$ST/w2" -- Devices/testvm/tests/selfchecks.sh "$BIN" "$TOKEN" "$ECHO_PORT"
EXPECTED=(powercut-fsync-survives vivid-setup v4l2-loop v4l2-loop-needs-loop usb-host usb-host-checks-echo
    usb-hotplug usb-ffs-device net-forward net-isolated)
declare -A seen=()
if [ -f "$ST/w2/results" ]; then
    while read -r status name rest; do
        case "$status" in
        PASS | FAIL) record "$status" "$name" "$rest"; seen[$name]=1 ;;
        INFO) echo "selftest: INFO $name $rest" ;;
        esac
    done <"$ST/w2/results"
fi
for name in "${EXPECTED[@]}"; do
    [ -n "${seen[$name]:-}" ] || record FAIL "$name" "no result (guest exit $BOOT_RC, see the console log)"
done
if [ "$BOOT_RC" = 124 ] || [ "$BOOT_RC" = 125 ]; then record FAIL selfchecks-boot "run.sh exit $BOOT_RC"; fi

echo
echo "== testvm selftest summary =="
printf '%s\n' "${results[@]}"
printf 'boot %s\n' "${BOOTS[@]}"
total=${#results[@]}
echo "selftest wall time $(elapsed "$T_ALL") s"
echo "$((total - fails)) passed, $fails failed"
[ "$fails" = 0 ] && rm -rf "$ST"
[ "$fails" = 0 ]
