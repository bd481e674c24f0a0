#!/bin/sh
# Guest: a whole checkout through the real kiosk-agent with face liveness on the kernel's vivid
# camera through libv4l2. A synthetic shopper (kioskctl dev feed-shopper) plays into vivid's HDMI
# output; vivid's loop delivers it on the HDMI capture input the agent reads (profile
# Devices/testvm/cameras/camera-vivid-hdmi-loop.json). The shopper follows the agent's
# instructions (the challenge is chosen at random per session), read from the control socket.
#
#   Devices/testvm/tests/liveness-vivid-vm.sh     (host: build, synthesize the shoppers, boot)
#
# Checks (PASS/FAIL in $VM_RESULTS):
#   live-passes       a live shopper: the checkout completes, liveness decision pass, the
#                     application is in the outbox
#   static-fails      the same photo held still: liveness fails or is inconclusive, no application
#   print-fails       a halftone print moving as one plane: no application
#   camera-status     status showed the camera streaming from vivid
. "$TESTVM_LIB"
REPO=${TESTVM_REPO:-$(pwd)}
BIN=${1:-$REPO/.build/debug}
SHOP=${2:?shopper directory}
# ${3}: which shoppers (default "live static print"; make test runs "live static")
failed=0
check() { vm_check "$@" || failed=1; }
vm_load_vivid || exit 1
ID=vivid@platform:vivid-000

run_kind() { # KIND: one checkout with this shopper in front of the camera; prints the checkout JSON
    kind=$1
    W=/run/lv-$kind
    mkdir -p "$W"
    cat >"$W/agent.toml" <<TOML
[agent]
device_id = "kiosk-vm-0001"
merchant_id = "merchant-vm"
state_dir = "$W/state"
[outbox]
min_free_disk_bytes = 0
[control]
socket = "$W/control.sock"
[terminal]
driver = "simulated"
simulated_scenario = "pay-confirm"
simulated_payments = 1
simulated_interval_ms = 4000
simulated_answer_ms = 200
[checkout]
cooldown_s = 0
[liveness]
mode = "camera"
time_limit_s = 60
# The debug agent under TCG analyses about one frame a second: a longer challenge window, as a
# slow board's camera profile would set it.
thresholds_file = "$W/thresholds.json"
[camera]
device = "$ID"
profiles_dir = "$REPO/Devices/testvm/cameras"
TOML
    echo '{"challenge_window": 20}' >"$W/thresholds.json"
    "$BIN/kioskctl" dev feed-shopper "$SHOP/$kind" --device "$VM_VIVID_OUT" --socket "$W/control.sock" --fps 15 --seconds 200 \
        --sequence-seconds 12 \
        >"$W/feed.log" 2>&1 &
    feeder=$!
    vm_wait_for_line "$W/feed.log" streaming 60 || { cat "$W/feed.log"; kill $feeder; return 1; }
    "$BIN/kiosk-agent" --config "$W/agent.toml" >"$W/agent.log" 2>&1 &
    agent=$!
    n=0
    state=
    while [ $n -lt 150 ]; do
        $VM_BB sleep 1
        n=$((n + 1))
        state=$("$BIN/kioskctl" checkouts --socket "$W/control.sock" --json 2>/dev/null |
            python3 -c 'import json,sys; d=json.load(sys.stdin); i=d.get("items",[]); print(i[0]["state"] if i else "")' 2>/dev/null)
        case "$state" in completed | liveness_failed | ineligible | abandoned | declined | timed_out) break ;; esac
    done
    "$BIN/kioskctl" status --socket "$W/control.sock" >"$W/status.txt" 2>&1
    "$BIN/kioskctl" doctor --config "$W/agent.toml" --json --timeout 10 >"$W/doctor.json" 2>"$W/doctor.err"
    "$BIN/kioskctl" checkouts --socket "$W/control.sock" --json >"$W/checkouts.json" 2>/dev/null
    "$BIN/kioskctl" queue list --socket "$W/control.sock" --json >"$W/queue.json" 2>/dev/null
    kill -TERM $agent
    wait $agent
    kill $feeder 2>/dev/null
    wait $feeder 2>/dev/null
    grep -h "liveness decided\|camera" "$W/agent.log" | tail -n 4
    echo "state=$state"
}

verdict() { # KIND WANT: compare the run's checkout with what it must be
    python3 - "$1" "$2" "/run/lv-$1" <<'PY'
import json, sys
kind, want, w = sys.argv[1], sys.argv[2], sys.argv[3]
items = json.load(open(w + "/checkouts.json")).get("items", [])
queue = json.load(open(w + "/queue.json"))
rows = queue.get("items", queue.get("rows", [])) if isinstance(queue, dict) else queue
if not items:
    print("FAIL %s: no checkout (see %s/agent.log)" % (kind, w)); sys.exit(1)
c = items[0]
lv = c.get("liveness") or {}
checks = " ".join("%s=%.2f%s" % (k["name"], k["value"], "" if k["passed"] else "!") for k in lv.get("checks", []))
if want == "pass":
    ok = c["state"] == "completed" and lv.get("decision") == "pass" and c.get("application_id") and len(rows) == 1
else:
    ok = c["state"] == "liveness_failed" and lv.get("decision") in ("fail", "inconclusive") and not c.get("application_id") and len(rows) == 0
print("%s %s: checkout %s, liveness %s score %.2f [%s], %d application(s) in the outbox" % (
    "OK" if ok else "FAIL", kind, c["state"], lv.get("decision"), lv.get("score", 0), checks, len(rows)))
sys.exit(0 if ok else 1)
PY
}

live() { run_kind live && verdict live pass; }
still() { run_kind static && verdict static fail; }
printed() { run_kind print && verdict print fail; }
camera_status() {
    grep -q "camera ok: .*$ID\|camera ok: V4L2\|camera ok: " /run/lv-live/status.txt &&
        echo "OK camera-status: $(grep camera /run/lv-live/status.txt)" ||
        { cat /run/lv-live/status.txt; echo "FAIL camera-status: not streaming"; return 1; }
}
doctor_camera() { # kioskctl doctor's camera check while the agent streams from vivid
    python3 - /run/lv-live/doctor.json <<'PY'
import json, sys
r = [c for c in json.load(open(sys.argv[1])) if c["check"] == "camera"]
ok = bool(r) and r[0]["status"] == "OK" and "delivering frames" in r[0]["message"]
print("%s doctor camera: %s" % ("OK" if ok else "FAIL", r[0] if r else "no camera check"))
sys.exit(0 if ok else 1)
PY
}
KINDS=${3:-live static print}
check live-passes live
case " $KINDS " in *" static "*) check static-fails still ;; esac
case " $KINDS " in *" print "*) check print-fails printed ;; esac
check camera-status camera_status
check doctor-camera doctor_camera

vm_log "results:"
cat "$VM_RESULTS"
exit "$failed"
