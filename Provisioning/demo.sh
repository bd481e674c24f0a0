#!/usr/bin/env bash
# make demo: whole checkouts on the embedded default, on loopback with real mTLS.
#   1. dev PKI (CA, server cert, device cert)       4. the simulated terminal plays DEMO_PAYMENTS payments:
#   2. kiosk-central on 127.0.0.1 (ephemeral port)     consent prompt -> answer -> liveness -> signed
#   3. kiosk-agent: simulated payment terminal,         application, durably queued, synced
#      a synthetic shopper in front of its camera    5. every completed checkout is at central exactly once
#      (face liveness checked locally)
#                                                    6. stop gracefully (SIGTERM), exit 0
set -euo pipefail
BIN=${1:-.build/debug}
PAYMENTS=${DEMO_PAYMENTS:-10}
DEVICE=kiosk-demo-0001
WORK=$(mktemp -d /tmp/kiosk-demo.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "dev PKI in $WORK/pki"
Provisioning/dev-pki.sh "$WORK/pki" "$DEVICE" >/dev/null
ls "$WORK/pki" "$WORK/pki/devices" | sed 's/^/   /'

step "kiosk-central on 127.0.0.1 (mTLS, client certificates required)"
"$BIN/kiosk-central" serve --listen 127.0.0.1:0 --port-file "$WORK/central.port" \
  --cert "$WORK/pki/server.pem" --key "$WORK/pki/server.key" --ca "$WORK/pki/ca.pem" \
  --db "$WORK/central.sqlite" 2>"$WORK/central.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/central.port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/central.port")
echo "   listening on https://localhost:$PORT"

step "a synthetic shopper for the camera (public-domain photo, Provisioning/fetch-faces.sh)"
LIVENESS_MODE=camera
if Provisioning/fetch-faces.sh >"$WORK/faces.log" 2>&1 && [ -f .cache/faces/astronaut.pgm ] &&
   "$BIN/kioskctl" dev synth-shopper --photo .cache/faces/astronaut.pgm --kind live --out "$WORK/shopper" --count 16 \
     --width 640 --height 480 | sed 's/^/   /'; then
  :
else
  LIVENESS_MODE=simulated
  echo "   no face photo (offline?): the liveness step is simulated in this run ($WORK/faces.log)"
fi

step "kiosk-agent (state in $WORK/state)"
cat >"$WORK/agent.toml" <<TOML
[agent]
device_id = "$DEVICE"
merchant_id = "merchant-demo"
state_dir = "$WORK/state"
[outbox]
min_free_disk_bytes = 0
[sync]
url = "https://localhost:$PORT"
ca_file = "$WORK/pki/ca.pem"
cert_file = "$WORK/pki/devices/$DEVICE.pem"
key_file = "$WORK/pki/devices/$DEVICE.key"
idle_poll_ms = 500
[control]
socket = "$WORK/control.sock"
[terminal]
driver = "simulated"              # the in-process terminal; "usb" drives a real one (Devices/profiles)
simulated_scenario = "mixed"      # every 5th shopper declines, every 7th lets the prompt expire, ...
simulated_payments = $PAYMENTS
simulated_interval_ms = 400
simulated_answer_ms = 300
[checkout]
cooldown_s = 0
prompt_timeout_s = 3
answer_grace_ms = 500
[liveness]
mode = "$LIVENESS_MODE"           # camera: the Liveness module checks each frame locally
time_limit_s = 20
[camera]
replay_dir = "$WORK/shopper"      # the synthetic shopper instead of /dev/video*: it does what it is asked
replay_fps = 15
TOML
"$BIN/kiosk-agent" --config "$WORK/agent.toml" 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=($AGENT)
for _ in $(seq 100); do "$BIN/kioskctl" status --socket "$WORK/control.sock" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/kioskctl" status --socket "$WORK/control.sock"

step "$PAYMENTS payments on the simulated terminal, followed live (kioskctl watch)"
"$BIN/kioskctl" watch --socket "$WORK/control.sock" >"$WORK/watch.log" 2>&1 &
WATCH=$!
PIDS+=($WATCH)
finals() { "$BIN/kioskctl" status --socket "$WORK/control.sock" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(d.get("checkouts",{}).get("since_start",{}).values()))'; }
for _ in $(seq 600); do [ "$(finals)" -ge "$PAYMENTS" ] && break; sleep 0.2; done
kill "$WATCH" 2>/dev/null || true
sed 's/^/   /' "$WORK/watch.log"
echo
"$BIN/kioskctl" checkouts --limit "$PAYMENTS" --socket "$WORK/control.sock"
COMPLETED=$("$BIN/kioskctl" status --socket "$WORK/control.sock" --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["checkouts"]["since_start"].get("completed",0))')

step "waiting for the $COMPLETED applications to reach central"
n=0
for _ in $(seq 150); do
  n=$("$BIN/kiosk-central" stats --db "$WORK/central.sqlite" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored"])')
  [ "$n" -ge "$COMPLETED" ] && break; sleep 0.2
done
"$BIN/kioskctl" queue list --socket "$WORK/control.sock"
echo
"$BIN/kiosk-central" list --db "$WORK/central.sqlite"
echo
"$BIN/kioskctl" status --socket "$WORK/control.sock"
[ "$COMPLETED" -gt 0 ] || { echo "demo: no checkout completed" >&2; exit 1; }
[ "$n" -eq "$COMPLETED" ] || { echo "demo: expected $COMPLETED applications at central, found $n" >&2; exit 1; }

step "graceful stop (SIGTERM)"
kill -TERM "$AGENT"; wait "$AGENT" && echo "   kiosk-agent stopped cleanly"
echo
echo "demo: $PAYMENTS payments -> $COMPLETED confirmed checkouts -> $COMPLETED signed applications, queued durably,"
echo "      delivered over mTLS, stored once each at central. OK"
