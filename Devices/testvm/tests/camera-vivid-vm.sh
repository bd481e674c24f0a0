#!/usr/bin/env bash
# Host: build kioskctl, boot the test VM with camera-vivid.sh (the Camera module on vivid through
# libv4l2), print the per-check results; exit status = the guest script's (124 timeout, 125 VM
# failure: see Devices/testvm/README.md).
#   Devices/testvm/tests/camera-vivid-vm.sh [run.sh options, e.g. --verbose]
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
cd "$REPO" || exit 1
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}

"$REPO/Devices/testvm/setup.sh" || { echo "camera-vivid: testvm set-up failed" >&2; exit 1; }
swift build --product kioskctl >"$CACHE/camera-vivid-build.log" 2>&1 ||
    { tail -n 30 "$CACHE/camera-vivid-build.log"; echo "camera-vivid: build failed" >&2; exit 1; }
WORK=$(mktemp -d "$CACHE/camera-vivid.XXXXXX")
"$REPO/Devices/testvm/run.sh" --timeout 300 --work "$WORK" "$@" -- \
    Devices/testvm/tests/camera-vivid.sh "$REPO/.build/debug/kioskctl" 2>"$WORK/run.stderr"
rc=$?
cat "$WORK/run.stderr" >&2
echo "--- results:"
cat "$WORK/results" 2>/dev/null || echo "(no results: the guest script did not run)"
[ -f "$WORK/snapshot-vivid.ppm" ] && echo "snapshot: $WORK/snapshot-vivid.ppm"
exit "$rc"
