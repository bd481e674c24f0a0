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
# A snapshot of the binaries: a long campaign must not pick up a rebuild halfway.
mkdir -p "$WORK/bin"
if [ -n "${CHAOS_BIN:-}" ]; then
    SRC=$CHAOS_BIN
else
    swift build >.cache/chaos/devices-build.log 2>&1 || { tail -n 30 .cache/chaos/devices-build.log; say "build failed"; exit 1; }
    SRC=.build/debug
fi
cp -a "$SRC"/{kiosk-agent,kioskctl,kiosk-central,terminal-emulator} "$SRC"/*.resources "$WORK/bin/" ||
    { say "cannot snapshot the binaries from $SRC"; exit 1; }
cp -a "$SRC"/libGRDB-dynamic.so "$WORK/bin/" 2>/dev/null
BIN=$WORK/bin
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

"$BIN/kiosk-central" serve --listen 127.0.0.1:0 --port-file "$WORK/central.port" --cert "$WORK/pki/server.pem" \
    --key "$WORK/pki/server.key" --ca "$WORK/pki/ca.pem" --db "$WORK/central.sqlite" 2>"$WORK/central.log" &
CENTRAL=$!
trap 'kill $CENTRAL 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$WORK/central.port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/central.port" 2>/dev/null)
[ -n "$PORT" ] || { cat "$WORK/central.log"; say "kiosk-central did not start"; exit 1; }

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

python3 - "$WORK" "$CYCLES" "$((SECONDS - T0))" "$LIVENESS" <<'PY'
import json, sqlite3, sys
work, cycles, wall, liveness = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
acks = [l.strip() for l in open(work + "/acks") if l.strip()]
rec = {"terminal": [], "camera": []}
for line in open(work + "/console", errors="replace"):
    p = line.split()
    if len(p) == 4 and p[0] == "CHAOS-RECOVERY" and p[1] in rec:
        rec[p[1]].append(float(p[3]))
db = sqlite3.connect(work + "/central.sqlite")
rows = db.execute("SELECT id, payload FROM applications").fetchall()
central = [r[0] for r in rows]
refs = {}
for _id, payload in rows:
    p = json.loads(payload)
    ref = (p.get("payment") or {}).get("transaction_ref") or _id
    refs[ref] = refs.get(ref, 0) + 1
try:
    outbox = [l.strip() for l in open(work + "/vm/final-outbox") if l.strip()]
except OSError:
    outbox = None
lost = sorted(set(acks) - set(central))
dup_ids = len(central) - len(set(central))
dup_payments = sum(n - 1 for n in refs.values() if n > 1)
recovery = max(rec["terminal"] + rec["camera"] + [0.0])
ok = True
def check(name, cond, detail=""):
    global ok
    print("devices: %-4s %s %s" % ("PASS" if cond else "FAIL", name, detail), file=sys.stderr)
    ok = ok and cond
check("acknowledged-at-central", not lost, "%d acknowledged, %d missing %s" % (len(set(acks)), len(lost), lost[:3]))
check("central-no-duplicate-ids", dup_ids == 0)
check("one-application-per-payment", dup_payments == 0, "%d payments twice" % dup_payments)
check("central-equals-final-outbox", outbox is not None and sorted(outbox) == sorted(central),
      "outbox %s, central %d" % (None if outbox is None else len(outbox), len(central)))
check("acks-seen", len(acks) > 0, "(applications accepted while the devices came and went)")
for dev in ("terminal", "camera"):
    r = rec[dev]
    check("%s-replugs-measured" % dev, len(r) == cycles,
          "%d of %d re-plugs seen again; recovery max %.1f s, mean %.1f s" % (len(r), cycles, max(r + [0]), sum(r) / max(1, len(r))))
print("devices: wall time %s s; liveness: %s" % (wall, liveness), file=sys.stderr)
print("CHAOS-ROW devices %d %d %d %d %d %.1f" % (cycles, len(set(acks)), len(central), len(lost), dup_ids + dup_payments, recovery))
sys.exit(0 if ok else 1)
PY
[ $? = 0 ] || failed=1
rm -rf "$WORK/bin"
say "work folder: $WORK (console: $WORK/console)"
exit $failed
