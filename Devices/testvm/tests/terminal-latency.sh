#!/bin/sh
# Guest (make bench): PING/PONG round trips through the real USB stack (FunctionFS emulator on
# dummy_hcd <-> usbcore/usbfs <-> libusb, kioskctl terminal test) and, as the peer measured in
# the same run, through the in-memory cable of the same link code (terminal-emulator sim-test).
# Prints "BENCH usb median_ms p99_ms" and "BENCH sim median_ms p99_ms".
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
BIN=${1:-$REPO/.build/release}
COUNT=${2:-500}
PROFILE=$REPO/Devices/profiles/kiosk-emulated-terminal.json
vm_load_usb_gadget_stack || exit 1
vm_ffs_gadget_create term 0x1209 0x4b41 || exit 1
"$BIN/terminal-emulator" --ffs /dev/ffs-term --scenario echo --serial EMU-BENCH-0001 --seconds 300 >/run/emu.log 2>&1 &
vm_wait_for_line /run/emu.log READY 30 || { cat /run/emu.log; exit 1; }
vm_ffs_bind term || exit 1
n=100
while [ "$n" -gt 0 ] && ! "$BIN/kioskctl" terminal list --profile "$PROFILE" --json 2>/dev/null | grep -q EMU-BENCH; do
    $VM_BB usleep 100000; n=$((n - 1))
done
"$BIN/kioskctl" terminal test --profile "$PROFILE" --count "$COUNT" --no-prompt --json >/run/usb.json || { cat /run/usb.json; exit 1; }
python3 -c 'import json,sys; s={x["step"]:x for x in json.load(open("/run/usb.json"))["steps"]}["latency"]; print("BENCH usb %.3f %.3f" % (s["median_ms"], s["p99_ms"]))'
"$BIN/terminal-emulator" sim-test --count "$COUNT" | tee /run/sim.txt
sed -n 's/.*median \([0-9.]*\) ms p99 \([0-9.]*\) ms.*/BENCH sim \1 \2/p' /run/sim.txt
