#!/usr/bin/env bash
# Devices/chaos/badinput.sh: bad input to the real kiosk-agent binary, on the host.
#   - broken config files (syntax, types, ranges, a world-readable key): exit 78 (EX_CONFIG) and
#     a message naming the file, line or key; nothing started, nothing written
#   - an outbox file that is not a database: set aside byte for byte, the agent runs on a fresh
#     one and keeps taking applications
#   - a queued row whose payload was damaged on disk: quarantined (kept, reported), the other
#     rows reach central, the agent stays up
# (Garbage terminal frames: make fuzz and the PaymentTerminal tests; garbage from central:
# Devices/chaos/network.sh.)
# Prints "CHAOS-ROW badinput CASES ACCEPTED AT_CENTRAL LOST DUPLICATED 0".
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
mkdir -p .cache/chaos
swift build >.cache/chaos/badinput-build.log 2>&1 || { tail -n 30 .cache/chaos/badinput-build.log; echo "badinput: build failed" >&2; exit 1; }
BIN=$REPO/.build/debug
W=$(mktemp -d "$REPO/.cache/chaos/badinput.XXXXXX")
"$REPO/Provisioning/dev-pki.sh" "$W/pki" kiosk-bad-0001 >/dev/null || exit 1
failed=0
cases=0
check() { # NAME CMD...
    cases=$((cases + 1))
    if "${@:2}"; then echo "badinput: PASS $1" >&2; else echo "badinput: FAIL $1" >&2; failed=1; fi
}
base() { # STATE_DIR PORT [PAYMENTS]: a valid config
    cat <<TOML
[agent]
device_id = "kiosk-bad-0001"
merchant_id = "merchant-dev"
state_dir = "$1"
[outbox]
min_free_disk_bytes = 0
[sync]
url = "https://localhost:$2"
ca_file = "$W/pki/ca.pem"
cert_file = "$W/pki/devices/kiosk-bad-0001.pem"
key_file = "$W/pki/devices/kiosk-bad-0001.key"
backoff_base_ms = 50
backoff_cap_ms = 500
idle_poll_ms = 200
[control]
socket = "$1/control.sock"
[terminal]
driver = "simulated"
simulated_scenario = "pay-confirm"
simulated_payments = ${3:-6}
simulated_interval_ms = 100
simulated_answer_ms = 20
[checkout]
cooldown_s = 0
[liveness]
mode = "simulated"
TOML
}

# --- broken configs: EX_CONFIG and a message that names what is wrong ---
bad_config() { # NAME EXPECTED_TEXT: the config is on stdin
    local f=$W/$1.toml
    cat >"$f"
    local out rc
    out=$(timeout 20 "$BIN/kiosk-agent" --config "$f" 2>&1)
    rc=$?
    [ "$rc" = 78 ] && grep -q -- "$2" <<<"$out" && [ ! -e "$W/state-$1" ] && return 0
    echo "  $1: exit $rc, output: $out" >&2
    return 1
}
check config-syntax bad_config syntax "syntax.toml:2: unterminated string" <<<"$(printf '[agent]\ndevice_id = "x\n')"
check config-type-value bad_config typev "expected integer" <<<"$(base "$W/state-typev" 1 | sed 's/^min_free_disk_bytes = 0/min_free_disk_bytes = "lots"/')"
check config-range bad_config range "sync.backoff_cap_ms" <<<"$(base "$W/state-range" 1 | sed 's/^backoff_cap_ms = 500/backoff_cap_ms = 0/')"
check config-plain-http bad_config http "must be an https:// URL" <<<"$(base "$W/state-http" 1 | sed 's#^url = .*#url = "http://central.example"#')"
cp "$W/pki/devices/kiosk-bad-0001.key" "$W/open.key"
chmod 0644 "$W/open.key"
check config-world-readable-key bad_config openkey "world-readable" <<<"$(base "$W/state-openkey" 1 | sed "s#^key_file = .*#key_file = \"$W/open.key\"#")"

# --- central for the two data cases ---
"$BIN/kiosk-central" serve --listen 127.0.0.1:0 --port-file "$W/central.port" --cert "$W/pki/server.pem" \
    --key "$W/pki/server.key" --ca "$W/pki/ca.pem" --db "$W/central.sqlite" 2>"$W/central.log" &
CENTRAL=$!
trap 'kill $CENTRAL 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$W/central.port" ] && break; sleep 0.1; done
PORT=$(cat "$W/central.port")
q() { sqlite3 -cmd ".timeout 3000" "$1" "$2"; }
run_agent() { # STATE PAYMENTS: run until PAYMENTS checkouts are final and nothing is left to sync (bounded), then stop
    local st=$1 payments=$2
    base "$st" "$PORT" "$payments" >"$st.toml"
    "$BIN/kiosk-agent" --config "$st.toml" 2>>"$st.log" &
    local pid=$! n=0
    while [ $n -lt 300 ]; do
        sleep 0.2
        n=$((n + 1))
        [ "$(q "$st/outbox.sqlite" "SELECT count(*) FROM checkout WHERE is_final = 1" 2>/dev/null)" -ge "$payments" ] 2>/dev/null || continue
        [ "$(q "$st/outbox.sqlite" "SELECT count(*) FROM outbox WHERE state IN ('pending','in_flight')" 2>/dev/null)" = 0 ] && break
    done
    "$BIN/kioskctl" status --socket "$st/control.sock" --json >"$st.status.json" 2>/dev/null
    kill -TERM $pid
    wait $pid
}

# --- an outbox that is not a database ---
mkdir -p "$W/corrupt"
head -c 200000 /dev/urandom >"$W/corrupt/outbox.sqlite"
cp "$W/corrupt/outbox.sqlite" "$W/garbage.copy"
run_agent "$W/corrupt" 6
set_aside=$(ls "$W/corrupt"/outbox.sqlite.corrupt-* 2>/dev/null | head -n 1)
check corrupt-db-set-aside-intact cmp -s "$W/garbage.copy" "${set_aside:-/nonexistent}"
check corrupt-db-reported grep -q '"set_aside"' "$W/corrupt.status.json"
check corrupt-db-agent-keeps-working test "$(q "$W/corrupt/outbox.sqlite" "SELECT count(*) FROM outbox WHERE state = 'synced'")" -eq 6

# --- a damaged row: queue 6 with central away, damage one, then sync ---
mkdir -p "$W/row"
kill -STOP $CENTRAL
base "$W/row" "$PORT" >"$W/row.toml"
"$BIN/kiosk-agent" --config "$W/row.toml" 2>"$W/row.log" &
pid=$!
for _ in $(seq 300); do
    [ "$(q "$W/row/outbox.sqlite" "SELECT count(*) FROM outbox" 2>/dev/null)" = 6 ] && break
    sleep 0.2
done
kill -TERM $pid
wait $pid
kill -CONT $CENTRAL
victim=$(q "$W/row/outbox.sqlite" "SELECT id FROM outbox ORDER BY sequence LIMIT 1 OFFSET 2")
q "$W/row/outbox.sqlite" "UPDATE outbox SET payload = CAST('{\"tampered\":' AS BLOB) WHERE id = '$victim'"
run_agent "$W/row" 0
check damaged-row-not-sent test "$(q "$W/central.sqlite" "SELECT count(*) FROM applications WHERE id = '$victim'")" -eq 0
check damaged-row-kept test "$(q "$W/row/outbox.sqlite" "SELECT count(*) FROM outbox WHERE id = '$victim' AND state != 'synced'") $(q "$W/row/outbox.sqlite" "SELECT count(*) FROM quarantine" 2>/dev/null || echo 0)" != "0 0"
check other-rows-at-central test "$(q "$W/row/outbox.sqlite" "SELECT count(*) FROM outbox WHERE state = 'synced'")" -eq 5
grep -h 'quarantin\|damaged\|digest' "$W/row.log" | head -n 2 | sed 's/^/  /' >&2

accepted=$(($(q "$W/corrupt/outbox.sqlite" "SELECT count(*) FROM outbox") + 6))
at_central=$(q "$W/central.sqlite" "SELECT count(*) FROM applications")
dups=$(q "$W/central.sqlite" "SELECT count(*) - count(DISTINCT id) FROM applications")
# Lost: accepted and neither at central nor kept (the damaged row is kept in quarantine).
lost=$((accepted - at_central - 1))
echo "CHAOS-ROW badinput $cases $accepted $at_central $lost $dups 0"
echo "badinput: work folder $W" >&2
exit $failed
