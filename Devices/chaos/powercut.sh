#!/usr/bin/env bash
# Devices/chaos/powercut.sh [CUTS]: power cuts in the test VM during continuous checkouts.
#
# kiosk-central runs on the host; the VM runs the terminal emulator (USB gadget on dummy_hcd), the
# camera (vivid, streaming to the agent through every cut; liveness not required for the offer),
# kiosk-agent (libusb, state on a virtual ext4 disk kept across boots) syncing to the host's
# central. CUTS times (default 3), at a random moment 2-10 s after the agent came up, qemu is
# SIGKILLed (Devices/testvm/tests/chaos-powercut.sh prints the marker; run.sh --kill-on). Then a
# final boot on the same disk plays a few more payments and waits until everything is synced.
#
# Checks: every application whose enqueue returned (CHAOS-ACK lines on the console, written
# after the commit) is at central exactly once; no payment became two applications; central
# holds exactly the final outbox; the final boot's own checks (every checkout final, no
# application without confirmed consent, integrity_check, no full PAN) pass.
# Prints "CHAOS-ROW powercut RUNS ACCEPTED AT_CENTRAL LOST DUPLICATED MAX_RECOVERY_S" last.
# Exit 0 when all checks pass. CHAOS_SEED fixes the cut moments.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
CUTS=${1:-3}
case "$CUTS" in '' | *[!0-9]*) echo "usage: $0 [CUTS]" >&2; exit 2 ;; esac
RANDOM=${CHAOS_SEED:-$$}
say() { echo "powercut: $*" >&2; }

"$REPO/Devices/testvm/setup.sh" >/dev/null || { say "testvm set-up failed"; exit 1; }
mkdir -p .cache/chaos
WORK=$(mktemp -d "$REPO/.cache/chaos/powercut.XXXXXX")
# shellcheck source=Devices/chaos/lib.sh
. "$HERE/lib.sh"
chaos_binaries powercut "$WORK/bin" terminal-emulator || exit 1
"$REPO/Provisioning/dev-pki.sh" "$WORK/pki" kiosk-vm-0001 >/dev/null || exit 1
chaos_central powercut "$WORK" || exit 1
trap 'kill $CENTRAL 2>/dev/null' EXIT

failed=0
max_recovery=0
: >"$WORK/acks"
boot() { # NAME CUT_AFTER N [run.sh options]: one boot; collects acks and recovery time
    local name=$1 cut=$2 n=$3
    shift 3
    mkdir -p "$WORK/$name"
    "$REPO/Devices/testvm/run.sh" --disk "$WORK/state.img" --net-forward "$PORT" --work "$WORK/$name" "$@" -- \
        Devices/testvm/tests/chaos-powercut.sh "$BIN" "$WORK/pki" "$PORT" "$cut" "$n" 2>"$WORK/$name.stderr"
    local rc=$?
    local log
    log=$(sed -n 's/.*console log: //p' "$WORK/$name.stderr" | tail -n 1)
    [ -n "$log" ] && [ -f "$log" ] || { cat "$WORK/$name.stderr" >&2; say "$name: no console log"; return 1; }
    tr -d '\r' <"$log" >"$WORK/$name.console"
    sed -n 's/^CHAOS-ACK \([0-9a-f-]*\).*/\1/p' "$WORK/$name.console" >>"$WORK/acks"
    local rec
    rec=$(sed -n 's/^CHAOS-RECOVERY .*answering \([0-9.]*\) s.*/\1/p' "$WORK/$name.console" | tail -n 1)
    [ -n "$rec" ] && max_recovery=$(python3 -c "print(max($max_recovery, $rec))")
    say "$name: exit $rc, $(grep -c '^CHAOS-ACK' "$WORK/$name.console") acknowledged, agent up after ${rec:-?} s"
    return $rc
}

for i in $(seq "$CUTS"); do
    cut=$((2 + RANDOM % 9))
    opts=(--kill-on CHAOS-POWERCUT-NOW --timeout 300)
    [ "$i" = 1 ] && opts+=(--mkdisk 256M)
    boot "boot$i" "$cut" "$i" "${opts[@]}"
    rc=$?
    if [ "$rc" != 137 ]; then
        say "boot $i: expected a power cut (137), got $rc"
        tail -n 40 "$WORK/boot$i.console" >&2
        failed=1
    fi
done
boot final 0 0 --timeout 600
rc=$?
if [ "$rc" != 0 ]; then
    say "final boot failed ($rc)"
    tail -n 60 "$WORK/final.console" >&2
    failed=1
fi
grep -a '^\(PASS\|FAIL\|INFO\)' "$WORK/final/results" 2>/dev/null | sed 's/^/  /' >&2
kill -TERM $CENTRAL 2>/dev/null
wait $CENTRAL 2>/dev/null

python3 - "$HERE" "$WORK" "$CUTS" "$max_recovery" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from ledger import Ledger
work, cuts, recovery = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ledger = Ledger("powercut", work, work + "/final/final-outbox")
ledger.check_exactly_once("(the cuts hit while checkouts ran)")
print(ledger.row("powercut", cuts, recovery))
sys.exit(0 if ledger.ok else 1)
PY
[ $? = 0 ] || failed=1
rm -rf "$WORK/bin" "$WORK/state.img"
say "work folder: $WORK"
exit $failed
