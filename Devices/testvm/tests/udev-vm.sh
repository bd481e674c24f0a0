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
# The technician's enrolment medium: ext4 labelled KIOSK-ENROL with kiosk-enrol.env at its root.
mkdir "$WORK/medium"
printf 'KIOSK_CENTRAL_URL=https://central.example:8443\nKIOSK_ENROL_TOKEN=test-token-0001\nKIOSK_MERCHANT_ID=merchant-test\nKIOSK_SITE=vm\n' >"$WORK/medium/kiosk-enrol.env"
truncate -s 8M "$WORK/medium.img"
mkfs.ext4 -q -F -L KIOSK-ENROL -d "$WORK/medium" "$WORK/medium.img" || { echo "udev: mkfs.ext4 failed" >&2; exit 1; }
"$REPO/Devices/testvm/run.sh" --timeout 180 --work "$WORK" --disk "$WORK/medium.img" "$@" -- \
    Devices/testvm/tests/udev.sh "$REPO" "$WORK/medium/kiosk-enrol.env" 2>"$WORK/run.stderr"
rc=$?
cat "$WORK/run.stderr" >&2
echo "--- results:"
cat "$WORK/results" 2>/dev/null || echo "(no results: the guest script did not run)"
[ "$rc" -eq 0 ] && rm -rf "$WORK"
exit "$rc"
