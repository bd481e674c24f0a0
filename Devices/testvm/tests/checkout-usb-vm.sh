#!/usr/bin/env bash
# Host: build kiosk-agent, kioskctl, kiosk-central and the terminal emulator, make a dev PKI,
# boot the test VM with checkout-usb.sh (≥ 100 checkouts through the real agent over libusb),
# print its figures and per-check results; exit status = the guest script's.
#   Devices/testvm/tests/checkout-usb-vm.sh [PAYMENTS] [run.sh options]
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
cd "$REPO" || exit 1
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}
PAYMENTS=${1:-100}
shift || true

"$REPO/Devices/testvm/setup.sh" || { echo "checkout-usb: testvm set-up failed" >&2; exit 1; }
swift build >"$CACHE/checkout-usb-build.log" 2>&1 ||
    { tail -n 30 "$CACHE/checkout-usb-build.log"; echo "checkout-usb: build failed" >&2; exit 1; }
WORK=$(mktemp -d "$CACHE/checkout-usb.XXXXXX")
"$REPO/Provisioning/dev-pki.sh" "$WORK/pki" kiosk-vm-0001 >/dev/null || exit 1
"$REPO/Devices/testvm/run.sh" --timeout 900 --work "$WORK" "$@" -- \
    Devices/testvm/tests/checkout-usb.sh "$REPO/.build/debug" "$WORK/pki" "$PAYMENTS" 2>"$WORK/run.stderr"
rc=$?
cat "$WORK/run.stderr" >&2
LOG=$(sed -n 's/.*console log: //p' "$WORK/run.stderr" | tail -n 1)
if [ -n "$LOG" ] && [ -f "$LOG" ]; then
    grep -a '^FIGURES' "$LOG" | tr -d '\r'
fi
echo "--- results:"
cat "$WORK/results" 2>/dev/null || echo "(no results: the guest script did not run)"
exit "$rc"
