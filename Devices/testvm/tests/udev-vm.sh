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
# Every profile has its udev line: terminals in 70-kiosk-agent.rules (also a unit test),
# scanners in 72-kiosk-agent-scanners.rules.
ids() { python3 -c 'import json,sys
for f in sys.argv[1:]:
    u = json.load(open(f))["usb"]; print("%04x:%04x" % (int(u["vendor_id"], 16), int(u["product_id"], 16)))' "$@" | sort; }
rule_ids() { sed -n 's/.*ATTR{idVendor}=="\([0-9a-f]*\)", ATTR{idProduct}=="\([0-9a-f]*\)".*/\1:\2/p' "$1" | sort; }
for pair in "profiles:70-kiosk-agent.rules" "scanners:72-kiosk-agent-scanners.rules"; do
    want=$(ids "$REPO"/Devices/"${pair%%:*}"/*.json); got=$(rule_ids "$REPO/Devices/udev/${pair#*:}")
    if [ "$want" = "$got" ]; then echo "PASS udev-lists ${pair#*:}: $(echo $got)"
    else echo "FAIL udev-lists ${pair#*:} lists '$(echo $got)', Devices/${pair%%:*} has '$(echo $want)'"; exit 1; fi
done
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
