#!/usr/bin/env bash
# Devices/chaos/devices.sh [CYCLES]: the terminal and the camera unplugged and re-plugged during
# continuous checkouts, in one boot of the test VM.
#
# kiosk-central runs on the host; the VM runs the terminal emulator (USB gadget on dummy_hcd,
# `mixed` scenario, without end), kiosk-agent (libusb terminal, liveness.mode = camera on vivid's
# HDMI capture) syncing to the host's
# central (liveness: see CHAOS_DEVICES_LIVENESS below). CYCLES times (default 10), at random moments: the gadget is unbound for 1-5 s and bound
# again; vivid is removed (rmmod; when refused because the node is open, its platform driver is
# unbound first, then rmmod as soon as the module is free) and loaded again — in random order or
# both at once (Devices/testvm/tests/chaos-devices.sh). Recovery: re-plug -> the agent logs the
# device again ("payment terminal connected" / "camera ok").
#
# Checks: every application whose enqueue returned (CHAOS-ACK) is at central exactly once; no
# payment became two applications; central holds exactly the final outbox; the guest's checks
# (the agent never restarted, every checkout final, none half, every application synced, none
# without confirmed consent, integrity_check, the agent let go of the unplugged camera).
# Prints "CHAOS-ROW devices CYCLES ACCEPTED AT_CENTRAL LOST DUPLICATED MAX_RECOVERY_S" last.
# Exit 0 when all checks pass. CHAOS_SEED fixes the schedule; CHAOS_BIN=DIR takes the binaries
# from DIR (kiosk-agent, kioskctl, kiosk-central, terminal-emulator, *.resources) instead of
# building them.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
CYCLES=${1:-10}
case "$CYCLES" in '' | *[!0-9]* | 0) echo "usage: $0 [CYCLES]" >&2; exit 2 ;; esac
SEED=${CHAOS_SEED:-$$}
RANDOM=$SEED
say() { echo "devices: $*" >&2; }
T0=$SECONDS

"$REPO/Devices/testvm/setup.sh" >/dev/null || { say "testvm set-up failed"; exit 1; }
mkdir -p .cache/chaos
WORK=$(mktemp -d "$REPO/.cache/chaos/devices.XXXXXX")
# shellcheck source=Devices/chaos/lib.sh
. "$HERE/lib.sh"
chaos_binaries devices "$WORK/bin" terminal-emulator || exit 1
"$REPO/Provisioning/dev-pki.sh" "$WORK/pki" kiosk-vm-0001 >/dev/null || exit 1

# The camera: liveness.mode = camera on vivid's HDMI capture in both modes (streaming all the
# time, supervised, unplugged and reloaded). CHAOS_DEVICES_LIVENESS=camera: liveness is required
# and a synthetic live shopper is fed into vivid (as liveness-vivid-vm.sh) — under TCG the debug
# agent analyses 0.2-2 frames/s and the checks end inconclusive, so hardly any application. The
# default (CHAOS_DEVICES_LIVENESS=stream): the camera streams and is supervised as in camera
# mode, but the checkout does not wait for liveness (checkout.require_liveness = false).
SHOP=-
LIVENESS="camera on vivid streaming and supervised, liveness not required (checkout.require_liveness = false)"
if [ "${CHAOS_DEVICES_LIVENESS:-stream}" = camera ]; then
    "$REPO/Provisioning/fetch-faces.sh" >/dev/null 2>&1
    if [ -f .cache/faces/astronaut.pgm ] &&
        "$BIN/kioskctl" dev synth-shopper --photo .cache/faces/astronaut.pgm --kind live --out "$WORK/shopper/live" \
            --count 24 >/dev/null 2>"$WORK/synth.log"; then
        SHOP=$WORK/shopper
        LIVENESS="camera on vivid, liveness required, live synthetic shopper fed into vivid"
    else
        say "no synthetic shopper ($(tail -n 1 "$WORK/synth.log" 2>/dev/null)): $LIVENESS"
    fi
fi

schedule=()
modes=(t c b)
for _ in $(seq "$CYCLES"); do
    # (no $RANDOM inside a command substitution: a subshell reseeds it)
    mode=${modes[$((RANDOM % 3))]}
    schedule+=("$mode:$((10 + RANDOM % 51)):$((10 + RANDOM % 41)):$((10 + RANDOM % 21))")
done
say "seed $SEED, schedule (mode:wait:terminal-out:camera-out, tenths of s): ${schedule[*]}"
say "liveness: $LIVENESS"

chaos_central devices "$WORK" || exit 1
trap 'kill $CENTRAL 2>/dev/null' EXIT

failed=0
mkdir -p "$WORK/vm"
"$REPO/Devices/testvm/run.sh" --net-forward "$PORT" --work "$WORK/vm" --timeout $((600 + CYCLES * 60)) -- \
    Devices/testvm/tests/chaos-devices.sh "$BIN" "$WORK/pki" "$PORT" "$SHOP" "${schedule[*]}" 2>"$WORK/vm.stderr"
rc=$?
log=$(sed -n 's/.*console log: //p' "$WORK/vm.stderr" | tail -n 1)
if [ -z "$log" ] || [ ! -f "$log" ]; then
    cat "$WORK/vm.stderr" >&2
    say "no console log"
    failed=1
    : >"$WORK/console"
else
    tr -d '\r' <"$log" >"$WORK/console"
fi
if [ "$rc" != 0 ]; then
    say "the VM run failed ($rc)"
    grep -v '^CHAOS-ACK' "$WORK/console" | tail -n 60 >&2
    failed=1
fi
sed -n 's/^CHAOS-ACK \([0-9a-f-]*\).*/\1/p' "$WORK/console" >"$WORK/acks"
grep -a '^\(PASS\|FAIL\|INFO\)' "$WORK/vm/results" 2>/dev/null | sed 's/^/  /' >&2
grep -a '^CHAOS-\(RECOVERY\|FD\|FINAL\)' "$WORK/console" | sed 's/^/  /' >&2
kill -TERM $CENTRAL 2>/dev/null
wait $CENTRAL 2>/dev/null

python3 - "$HERE" "$WORK" "$CYCLES" "$((SECONDS - T0))" "$LIVENESS" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from ledger import Ledger
work, cycles, wall, liveness = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rec = {"terminal": [], "camera": []}
for line in open(work + "/console", errors="replace"):
    p = line.split()
    if len(p) == 4 and p[0] == "CHAOS-RECOVERY" and p[1] in rec:
        rec[p[1]].append(float(p[3]))
ledger = Ledger("devices", work, work + "/vm/final-outbox")
ledger.check_exactly_once("(applications accepted while the devices came and went)")
for dev in ("terminal", "camera"):
    r = rec[dev]
    ledger.check("%s-replugs-measured" % dev, len(r) == cycles,
                 "%d of %d re-plugs seen again; recovery max %.1f s, mean %.1f s" % (len(r), cycles, max(r + [0]), sum(r) / max(1, len(r))))
print("devices: wall time %s s; liveness: %s" % (wall, liveness), file=sys.stderr)
print(ledger.row("devices", cycles, max(rec["terminal"] + rec["camera"] + [0.0])))
sys.exit(0 if ledger.ok else 1)
PY
[ $? = 0 ] || failed=1
rm -rf "$WORK/bin"
say "work folder: $WORK (console: $WORK/console)"
exit $failed
