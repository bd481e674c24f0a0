#!/bin/sh
# Guest: the USB payment terminal end to end on the kernel's own USB stack (dummy_hcd +
# FunctionFS gadget <-> usbcore/usbfs <-> libusb): the terminal emulator plays the device, the
# agent's USB transport (USBTerminalDriver: hotplug, open, claim, TerminalLink) is the host.
#
#   swift build --product terminal-emulator        # on the host, first
#   Devices/testvm/run.sh --timeout 240 -- Devices/testvm/tests/terminal-usb.sh [EMULATOR]
#   (or Devices/testvm/tests/terminal-usb-vm.sh: build, boot, print the results)
#
# Checks (PASS/FAIL lines in $VM_RESULTS and on the console; exit status non-zero on failure):
#   sim-ping-latency       baseline: PINGs through the in-process SimulatedTerminal (no USB)
#   udev-rule              70-kiosk-agent.rules: /dev/kiosk/terminal-<serial> -> the usbfs node,
#                          group kiosk-agent, mode 0660
#   host-test              open via hotplug, PONG serial = iSerialNumber, 200 PINGs (RTT
#                          median/p99), a prompt, an unbind in the middle of a prompt
#                          (LinkError.disconnected), rebind, reconnect via hotplug, exchange
#   scenario-*             each emulator scenario against the agent-side checks (the ones the
#                          unit tests run in-process); pay-decline with the polling watcher
#                          instead of hotplug
#   checks-detect-mismatch negative control: expecting pay-decline from a pay-confirm terminal fails
#   interrupt-in           the echo scenario over an interrupt IN endpoint (a profile saying
#                          "interrupt", the emulator's --interrupt-in)
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
BIN=${1:-$REPO/.build/debug/terminal-emulator}
PROFILE=$REPO/Devices/profiles/kiosk-emulated-terminal.json
G=term
SERIAL=EMU-4B41-0001
failed=0
check() { vm_check "$@" || failed=1; }
[ -x "$BIN" ] || { vm_log "no emulator binary $BIN (swift build --product terminal-emulator)"; exit 1; }

# --- Gadget stack, udev with the kiosk-agent rule --------------------------------------------
vm_load_usb_gadget_stack || exit 1
groupadd -r kiosk-agent || { vm_log "groupadd kiosk-agent"; exit 1; }
mkdir -p /etc/udev/rules.d
cp "$REPO/Devices/udev/70-kiosk-agent.rules" /etc/udev/rules.d/ || exit 1
vm_start_udevd || exit 1
vm_ffs_gadget_create "$G" 0x1209 0x4b41 || exit 1

EMU_PID=
EMU_LOG=
EMU_RUN=0
emu_start() { # SCENARIO [ARGS...]: start the emulator, wait for READY, plug the gadget in
    _scn=$1
    shift
    EMU_RUN=$((EMU_RUN + 1))
    EMU_LOG=/run/emu-$EMU_RUN-$_scn.log
    : >"$EMU_LOG" # created before the wait (the child's redirection may come later)
    "$BIN" --ffs "/dev/ffs-$G" --scenario "$_scn" --serial "$SERIAL" --seconds 200 "$@" >"$EMU_LOG" 2>&1 &
    EMU_PID=$!
    vm_wait_for_line "$EMU_LOG" READY 30 || { cat "$EMU_LOG"; return 1; }
    vm_ffs_bind "$G"
}
emu_stop() { # stop the emulator (closing ep0 unregisters the gadget); show its log
    [ -n "$EMU_PID" ] || return 0
    kill "$EMU_PID" 2>/dev/null
    wait "$EMU_PID"
    EMU_PID=
    # The gadget must be unbound before the next emulator writes its descriptors.
    [ -z "$(cat "/sys/kernel/config/usb_gadget/$G/UDC" 2>/dev/null)" ] || vm_ffs_unbind "$G"
}

# --- 0. the link alone (in-memory cable, same binary, same VM): the baseline for the figures ---
check sim-ping-latency "$BIN" sim-test --count 200

# --- 1. echo terminal: udev rule, latency, prompt, unplug/replug ------------------------------
if emu_start echo --prompt-delay-ms 500; then
    udev_rule() {
        link=/dev/kiosk/terminal-$SERIAL
        # Enumeration after the bind, then udev's event: wait for the link (10 s at most).
        n=100
        while [ ! -L "$link" ] && [ "$n" -gt 0 ]; do $VM_BB usleep 100000; n=$((n - 1)); done
        udevadm settle --timeout=10
        [ -L "$link" ] || { echo "FAIL udev-rule: no $link ($(ls -l /dev/kiosk 2>&1))"; return 1; }
        node=$(readlink -f "$link")
        case "$node" in /dev/bus/usb/*) ;; *) echo "FAIL udev-rule: $link -> $node, not a usbfs node"; return 1 ;; esac
        perms=$(stat -c '%A %G' "$node")
        [ "$perms" = "crw-rw---- kiosk-agent" ] || { echo "FAIL udev-rule: $node is '$perms'"; return 1; }
        echo "OK udev-rule: $link -> $node ($perms)"
    }
    check udev-rule udev_rule
    # The technician's commands: kioskctl terminal list / test (JSON checked, exit status checked).
    CTL=$(dirname "$BIN")/kioskctl
    kioskctl_terminal() {
        "$CTL" terminal list --profile "$PROFILE" --json >/run/ctl-list.json || { echo "FAIL kioskctl-terminal: list failed"; return 1; }
        python3 - "$SERIAL" /run/ctl-list.json <<'PY' || return 1
import json, sys
d = json.load(open(sys.argv[2]))
devs = [x for x in d["devices"] if x["serial"] == sys.argv[1] and x["openable"]]
if len(devs) != 1:
    print("FAIL kioskctl-terminal: list shows", d); sys.exit(1)
PY
        "$CTL" terminal test --profile "$PROFILE" --count 50 --json >/run/ctl-test.json || { cat /run/ctl-test.json; echo "FAIL kioskctl-terminal: test failed"; return 1; }
        python3 - /run/ctl-test.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
steps = {s["step"]: s for s in d["steps"]}
assert d["ok"] and set(steps) == {"open", "ping", "status", "latency", "display", "prompt"}, d
lat = steps["latency"]
print("OK kioskctl-terminal: list finds the terminal; test: %s; %d PINGs median %.2f ms p99 %.2f ms; prompt answered in %.0f ms (emulated shopper 500 ms)" % (
    steps["ping"]["detail"], lat["count"], lat["median_ms"], lat["p99_ms"], steps["prompt"]["answer_ms"]))
PY
    }
    check kioskctl-terminal kioskctl_terminal
    # Negative control: a serial that is not plugged in must fail with a clear message.
    check kioskctl-terminal-absent vm_expect_fail "$CTL" terminal test --profile "$PROFILE" --serial NOPE-0000
    devices() {
        "$CTL" devices --profiles-dir "$REPO/Devices/profiles" --json >/run/ctl-devices.json || { echo "FAIL kioskctl-devices: exit $?"; return 1; }
        python3 - "$SERIAL" /run/ctl-devices.json <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
t = [x for x in d["terminals"] if x["serial"] == sys.argv[1]]
assert len(t) == 1 and t[0]["profile"] == "kiosk-emulated-terminal", d
print("OK kioskctl-devices: terminal %s listed with profile %s at %s" % (t[0]["serial"], t[0]["profile"], t[0]["node"]))
PY
    }
    check kioskctl-devices devices
    check host-test "$BIN" host-test --profile "$PROFILE" --count 200 --gadget "$G" --prompt-delay-ms 500
    emu_stop
    cat "$EMU_LOG"
else
    check host-test false
fi

# --- 2. scenarios, each against a fresh emulator ----------------------------------------------
for scn in pay-confirm pay-decline no-answer garbage full-pan unplug-mid-exchange; do
    count=1
    [ "$scn" = pay-confirm ] && count=2
    if emu_start "$scn" --count "$count"; then
        extra=
        [ "$scn" = pay-decline ] && extra=--poll
        check "scenario-$scn" "$BIN" host-scenario --scenario "$scn" --profile "$PROFILE" $extra
        if [ "$scn" = pay-confirm ]; then
            # Negative control: the second payment is confirmed too; expecting a decline must fail.
            check checks-detect-mismatch vm_expect_fail "$BIN" host-scenario --scenario pay-decline \
                --profile "$PROFILE" --check-name negative-control-expects-decline
        fi
        if [ "$scn" = unplug-mid-exchange ]; then
            wait "$EMU_PID"
            EMU_PID=
        fi
        emu_stop
        cat "$EMU_LOG"
    else
        check "scenario-$scn" false
    fi
done

# --- 3. interrupt IN endpoint (a profile saying so) -------------------------------------------
sed -e 's/"kiosk-emulated-terminal"/"kiosk-emulated-terminal-int"/' \
    -e 's/"address": "0x81", "type": "bulk"/"address": "0x81", "type": "interrupt"/' \
    "$PROFILE" >/run/kiosk-emulated-terminal-int.json
if emu_start echo --interrupt-in; then
    check interrupt-in "$BIN" host-scenario --scenario echo --profile /run/kiosk-emulated-terminal-int.json \
        --check-name interrupt-in-echo
    emu_stop
    cat "$EMU_LOG"
else
    check interrupt-in false
fi

# --- 4. HID QR/barcode scanner: the kernel's own HID gadget (configfs usb_f_hid) --------------
# usbhid binds it as a keyboard first; kioskctl scanner read claims it through libusb (usbhid
# detached: codes are not typed into the screen), decodes the reports, and usbhid gets it back.
scanner() {
    CTL=$(dirname "$BIN")/kioskctl
    modprobe -a usb_f_hid usbhid hid_generic || { echo "FAIL scanner: modprobe usb_f_hid usbhid hid_generic"; return 1; }
    S=/sys/kernel/config/usb_gadget/scan
    mkdir -p "$S/strings/0x409" "$S/functions/hid.usb0" "$S/configs/c.1" || return 1
    echo 0x1209 >"$S/idVendor"; echo 0x5343 >"$S/idProduct"; echo 0x0200 >"$S/bcdUSB"
    echo SCAN-0001 >"$S/strings/0x409/serialnumber"; echo "testvm scanner" >"$S/strings/0x409/product"
    echo 1 >"$S/functions/hid.usb0/protocol"; echo 1 >"$S/functions/hid.usb0/subclass"; echo 8 >"$S/functions/hid.usb0/report_length"
    # The HID 1.11 appendix B.1 boot keyboard report descriptor.
    python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex("05010906a101050719e029e71500250175019508810295017508810395057501050819012905910295017503910395067508150025650507190029658100c0"))' \
        >"$S/functions/hid.usb0/report_desc" || return 1
    echo 100 >"$S/configs/c.1/MaxPower"
    ln -s "$S/functions/hid.usb0" "$S/configs/c.1/" || return 1
    vm_ffs_bind scan || return 1
    n=100
    while [ ! -c /dev/hidg0 ] && [ "$n" -gt 0 ]; do $VM_BB usleep 100000; n=$((n - 1)); done
    [ -c /dev/hidg0 ] || { echo "FAIL scanner: no /dev/hidg0"; return 1; }
    # usbhid takes it as a keyboard (the state the driver must take it away from).
    n=100
    while ! ls /sys/bus/usb/drivers/usbhid/ 2>/dev/null | grep -q ':1.0$' && [ "$n" -gt 0 ]; do $VM_BB usleep 100000; n=$((n - 1)); done
    ls /sys/bus/usb/drivers/usbhid/ | grep -q ':1.0$' || { echo "FAIL scanner: usbhid did not bind the gadget"; return 1; }
    codes='281234567890123456|https://pay.example/q?c=AbZ-19_x|Kiosk 42!'
    "$CTL" scanner read --profile "$REPO/Devices/scanners/test-hid-scanner.json" --count 3 --timeout 60 --reveal --json \
        >/run/scan.json 2>/run/scan.err &
    ctl=$!
    vm_wait_for_line /run/scan.err listening 30 || { cat /run/scan.err; echo "FAIL scanner: kioskctl did not open it"; return 1; }
    detached=yes
    ls /sys/bus/usb/drivers/usbhid/ | grep -q ':1.0$' && detached=no
    "$(dirname "$BIN")/terminal-emulator" hid-type --device /dev/hidg0 --layout us --text "$codes" || return 1
    wait "$ctl" || { cat /run/scan.err /run/scan.json; echo "FAIL scanner: kioskctl scanner read failed"; return 1; }
    n=50
    while ! ls /sys/bus/usb/drivers/usbhid/ 2>/dev/null | grep -q ':1.0$' && [ "$n" -gt 0 ]; do $VM_BB usleep 100000; n=$((n - 1)); done
    reattached=no
    ls /sys/bus/usb/drivers/usbhid/ | grep -q ':1.0$' && reattached=yes
    python3 - "$codes" "$detached" "$reattached" /run/scan.json <<'PY'
import json, sys
want, detached, reattached, path = sys.argv[1].split("|"), sys.argv[2], sys.argv[3], sys.argv[4]
d = json.load(open(path))
if d["codes"] != want or detached != "yes" or reattached != "yes":
    print("FAIL scanner: codes %r (want %r), usbhid detached while reading: %s, re-attached after: %s" % (d["codes"], want, detached, reattached))
    sys.exit(1)
print("OK scanner: 3 codes read through libusb from the usb_f_hid gadget (usbhid detached while reading, re-attached after)")
PY
}
check scanner-hid scanner

vm_log "results:"
cat "$VM_RESULTS"
exit "$failed"
