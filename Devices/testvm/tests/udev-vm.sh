#!/usr/bin/env bash
# Host: boot the test VM with udev.sh (70-kiosk-agent.rules on a real udevd; no Swift build),
# print the per-check results; exit status = the guest script's (124 timeout, 125 VM failure).
#   Devices/testvm/tests/udev-vm.sh [run.sh options, e.g. --verbose]
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
cd "$REPO" || exit 1
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}

"$REPO/Devices/testvm/setup.sh" || { echo "udev: testvm set-up failed" >&2; exit 1; }
WORK=$(mktemp -d "$CACHE/udev.XXXXXX")
"$REPO/Devices/testvm/run.sh" --timeout 180 --work "$WORK" "$@" -- Devices/testvm/tests/udev.sh 2>"$WORK/run.stderr"
rc=$?
cat "$WORK/run.stderr" >&2
echo "--- results:"
cat "$WORK/results" 2>/dev/null || echo "(no results: the guest script did not run)"
[ "$rc" -eq 0 ] && rm -rf "$WORK"
exit "$rc"
