#!/usr/bin/env bash
# Host: build kiosk-agent and kioskctl, fetch the public-domain face photo, synthesize the
# shoppers (live, static, print) natively, boot the test VM with liveness-vivid.sh.
#   LIVENESS_KINDS="live static print" Devices/testvm/tests/liveness-vivid-vm.sh [run.sh options]
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
cd "$REPO" || exit 1
CACHE=${TESTVM_CACHE:-$REPO/.cache/testvm}

"$REPO/Devices/testvm/setup.sh" || { echo "liveness-vivid: testvm set-up failed" >&2; exit 1; }
swift build >"$CACHE/liveness-vivid-build.log" 2>&1 ||
    { tail -n 30 "$CACHE/liveness-vivid-build.log"; echo "liveness-vivid: build failed" >&2; exit 1; }
"$REPO/Provisioning/fetch-faces.sh" >/dev/null || { echo "liveness-vivid: fetch-faces.sh failed" >&2; exit 1; }
WORK=$(mktemp -d "$CACHE/liveness-vivid.XXXXXX")
KINDS=${LIVENESS_KINDS:-live static print}
for kind in $KINDS; do
    "$REPO/.build/debug/kioskctl" dev synth-shopper --photo "$REPO/.cache/faces/astronaut.pgm" --kind "$kind" \
        --out "$WORK/shopper/$kind" --count 24 >/dev/null || { echo "liveness-vivid: synth-shopper $kind failed" >&2; exit 1; }
done
"$REPO/Devices/testvm/run.sh" --timeout 900 --work "$WORK" "$@" -- \
    Devices/testvm/tests/liveness-vivid.sh "$REPO/.build/debug" "$WORK/shopper" "$KINDS" 2>"$WORK/run.stderr"
rc=$?
cat "$WORK/run.stderr" >&2
echo "--- results:"
cat "$WORK/results" 2>/dev/null || echo "(no results: the guest script did not run)"
exit "$rc"
