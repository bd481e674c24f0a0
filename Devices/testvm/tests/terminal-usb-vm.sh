#!/usr/bin/env bash
# Host: build the terminal emulator, boot the test VM with terminal-usb.sh, print every check
# with its figures (ping RTT, reconnect time) and the per-check results; exit status = the guest
# script's (124 timeout, 125 VM failure: see Devices/testvm/README.md).
#   Devices/testvm/tests/terminal-usb-vm.sh [run.sh options, e.g. --verbose]
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
cd "$REPO" || exit 1
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}

"$REPO/Devices/testvm/setup.sh" || { echo "terminal-usb: testvm set-up failed" >&2; exit 1; }
{ swift build --product terminal-emulator && swift build --product kioskctl; } >"$CACHE/terminal-usb-build.log" 2>&1 ||
    { tail -n 30 "$CACHE/terminal-usb-build.log"; echo "terminal-usb: build failed" >&2; exit 1; }
WORK=$(mktemp -d "$CACHE/terminal-usb.XXXXXX")
"$REPO/Devices/testvm/run.sh" --timeout 480 --work "$WORK" "$@" -- \
    Devices/testvm/tests/terminal-usb.sh "$REPO/.build/debug/terminal-emulator" 2>"$WORK/run.stderr"
rc=$?
cat "$WORK/run.stderr" >&2
LOG=$(sed -n 's/.*console log: //p' "$WORK/run.stderr" | tail -n 1)
if [ -n "$LOG" ] && [ -f "$LOG" ]; then
    echo "--- checks inside the host-side programs:"
    grep -aE '^(PASS|FAIL) [a-z-]+: ' "$LOG" | tr -d '\r'
fi
echo "--- results:"
cat "$WORK/results" 2>/dev/null || echo "(no results: the guest script did not run)"
exit "$rc"
