#!/usr/bin/env bash
# make demo: a whole store-and-forward run on loopback with real mTLS.
#   1. dev PKI (CA, server cert, device cert)      4. feed sample applications (stand-in for checkout)
#   2. kiosk-central on 127.0.0.1 (ephemeral port)  5. show them arrive at central, exactly once
#   3. kiosk-agent with a demo config              6. stop both gracefully, exit 0
set -euo pipefail
BIN=${1:-.build/debug}
COUNT=${DEMO_COUNT:-5}
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
allow_submit = true
TOML
"$BIN/kiosk-agent" --config "$WORK/agent.toml" 2>"$WORK/agent.log" &
AGENT=$!
PIDS+=($AGENT)
for _ in $(seq 100); do "$BIN/kioskctl" status --socket "$WORK/control.sock" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/kioskctl" status --socket "$WORK/control.sock"

step "feeding $COUNT sample applications (each acknowledged only once fsync'd)"
"$BIN/kioskctl" dev submit-sample --count "$COUNT" --device-id "$DEVICE" --socket "$WORK/control.sock"

step "waiting for them to reach central"
for _ in $(seq 100); do
  n=$("$BIN/kiosk-central" stats --db "$WORK/central.sqlite" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored"])')
  [ "$n" -ge "$COUNT" ] && break; sleep 0.2
done
"$BIN/kioskctl" queue list --socket "$WORK/control.sock"
echo
"$BIN/kiosk-central" list --db "$WORK/central.sqlite"
echo
"$BIN/kioskctl" status --socket "$WORK/control.sock"
[ "$n" -eq "$COUNT" ] || { echo "demo: expected $COUNT applications at central, found $n" >&2; exit 1; }

step "graceful stop (SIGTERM)"
kill -TERM "$AGENT"; wait "$AGENT" && echo "   kiosk-agent stopped cleanly"
echo
echo "demo: $COUNT applications queued durably, delivered over mTLS, stored once each at central. OK"
