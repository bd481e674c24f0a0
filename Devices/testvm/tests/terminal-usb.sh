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

vm_log "results:"
cat "$VM_RESULTS"
exit "$failed"
