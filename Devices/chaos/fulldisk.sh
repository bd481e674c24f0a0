#!/usr/bin/env bash
# Devices/chaos/fulldisk.sh: the agent's state filesystem (a 24 MiB ext4 disk in the test VM)
# fills up during checkouts; see Devices/testvm/tests/chaos-fulldisk.sh for the checks.
# Prints the guest's per-check results and its "CHAOS-ROW fulldisk ..." line; exit = the guest's.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
"$REPO/Devices/testvm/setup.sh" >/dev/null || { echo "fulldisk: testvm set-up failed" >&2; exit 1; }
mkdir -p .cache/chaos
swift build >.cache/chaos/fulldisk-build.log 2>&1 || { tail -n 30 .cache/chaos/fulldisk-build.log; echo "fulldisk: build failed" >&2; exit 1; }
WORK=$(mktemp -d "$REPO/.cache/chaos/fulldisk.XXXXXX")
"$REPO/Provisioning/dev-pki.sh" "$WORK/pki" kiosk-vm-0001 >/dev/null || exit 1
mkdir -p "$WORK/share"
"$REPO/Devices/testvm/run.sh" --disk "$WORK/state.img" --mkdisk 24M --timeout 600 --work "$WORK/share" -- \
    Devices/testvm/tests/chaos-fulldisk.sh "$REPO/.build/debug" "$WORK/pki" 2>"$WORK/run.stderr"
rc=$?
LOG=$(sed -n 's/.*console log: //p' "$WORK/run.stderr" | tail -n 1)
cat "$WORK/share/results" 2>/dev/null | sed 's/^/fulldisk: /' >&2 || cat "$WORK/run.stderr" >&2
[ -n "$LOG" ] && [ -f "$LOG" ] && tr -d '\r' <"$LOG" | grep -a '^CHAOS-ROW' | tail -n 1
[ "$rc" = 0 ] || { tail -n 30 "$WORK/share/agent.log" 2>/dev/null >&2; echo "fulldisk: FAILED (exit $rc); work folder $WORK" >&2; }
exit "$rc"
