#!/usr/bin/env bash
# Devices/chaos/network.sh [PAYMENTS] [MIN_FAULTS]: the real kiosk-agent syncing through a broken
# network to a misbehaving kiosk-central, on the host's loopback.
#
# kiosk-agent (simulated terminal, PAYMENTS confirmed checkouts as fast as they come) syncs one
# application per request through faultproxy.py (connection resets, a captive portal answering
# plain HTTP to TLS, hangs past the agent's timeout, replies cut mid-body, refused connects) to
# kiosk-central injecting its own faults (500, 429 + Retry-After, drops before/after storing,
# malformed and HTML 200s, resets mid-body, slow answers). The run goes on until every checkout
# is final and every application synced, and at least MIN_FAULTS faults were injected (more
# payments are not needed: a synced outbox is re-checked every idle poll, faults keep coming
# only while requests do, so PAYMENTS bounds the run).
#
# Checks: every application in the agent's outbox is at central exactly once, no payment became
# two applications, no retry delay above the configured cap, RSS flat (the last third of the run
# stays within 8 MiB of the first third's peak), open file descriptors flat.
# Prints "CHAOS-ROW network RUNS ACCEPTED AT_CENTRAL LOST DUPLICATED MAX_RECOVERY_S" last
# (RUNS = faults injected; recovery = the longest stretch with pending work and no success).
# CHAOS_BIN=DIR uses prebuilt binaries from DIR instead of `swift build` + a snapshot.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
PAYMENTS=${1:-400}
MIN_FAULTS=${2:-200}
say() { echo "network: $*" >&2; }

# shellcheck source=Devices/chaos/lib.sh
. "$HERE/lib.sh"

mkdir -p .cache/chaos
WORK=$(mktemp -d "$REPO/.cache/chaos/network.XXXXXX")
chaos_binaries network "$WORK/bin" || exit 1
"$REPO/Provisioning/dev-pki.sh" "$WORK/pki" kiosk-net-0001 >/dev/null || exit 1
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT

chaos_central network "$WORK" --fault-rate 0.35 --fault-seed "${CHAOS_SEED:-$$}" --slow-ms 200 || exit 1
pids+=($CENTRAL)
python3 "$HERE/faultproxy.py" --listen-port-file "$WORK/proxy.port" --upstream "$(cat "$WORK/central.port")" \
    --rate 0.5 --seed "${CHAOS_SEED:-$$}" --stats "$WORK/proxy.json" 2>"$WORK/proxy.log" &
pids+=($!)
wait_file "$WORK/proxy.port" || { cat "$WORK/proxy.log"; say "fault proxy did not start"; exit 1; }

cat >"$WORK/agent.toml" <<TOML
[agent]
device_id = "kiosk-net-0001"
merchant_id = "merchant-dev"
state_dir = "$WORK/state"
[outbox]
min_free_disk_bytes = 0
[sync]
url = "https://localhost:$(cat "$WORK/proxy.port")"
ca_file = "$WORK/pki/ca.pem"
cert_file = "$WORK/pki/devices/kiosk-net-0001.pem"
key_file = "$WORK/pki/devices/kiosk-net-0001.key"
batch_size = 1
connect_timeout_ms = 1000
timeout_ms = 1500
backoff_base_ms = 20
backoff_cap_ms = 300
retry_after_cap_s = 1
idle_poll_ms = 100
[control]
socket = "$WORK/control.sock"
[terminal]
driver = "simulated"
simulated_scenario = "pay-confirm"
simulated_payments = $PAYMENTS
simulated_interval_ms = 10
simulated_answer_ms = 0
[checkout]
cooldown_s = 0
[liveness]
mode = "simulated"
TOML
"$BIN/kiosk-agent" --config "$WORK/agent.toml" 2>"$WORK/agent.log" &
AGENT=$!
pids+=($AGENT)
DB=$WORK/state/outbox.sqlite
q() { sqlite3 -cmd ".timeout 2000" "$DB" "$1" 2>/dev/null; }
faults() {
    python3 - "$WORK" <<'PY'
import json, sqlite3, sys
w = sys.argv[1]
p = json.load(open(w + "/proxy.json"))
c = sqlite3.connect(w + "/central.sqlite", timeout=5).execute("SELECT value FROM counters WHERE name='faults_injected'").fetchone()
print(sum(p["faults"].values()) + (c[0] if c else 0))
PY
}
: >"$WORK/rss"
t0=$(date +%s)
while :; do
    sleep 2
    kill -0 $AGENT 2>/dev/null || { tail -n 30 "$WORK/agent.log"; say "the agent died"; exit 1; }
    echo "$(($(date +%s) - t0)) $(proc_rss_kib $AGENT) $(proc_fds $AGENT)" >>"$WORK/rss"
    done_checkouts=$(q "SELECT count(*) FROM checkout WHERE is_final = 1")
    unsynced=$(q "SELECT count(*) FROM outbox WHERE state != 'synced'")
    f=$(faults 2>/dev/null || echo 0)
    [ "${done_checkouts:-0}" -ge "$PAYMENTS" ] && [ "${unsynced:-1}" = 0 ] && break
    [ $(($(date +%s) - t0)) -lt 1800 ] || { say "not settled after 30 min: $done_checkouts final, $unsynced unsynced"; break; }
done
say "settled after $(($(date +%s) - t0)) s: $done_checkouts checkouts final, $f faults injected"
kill -TERM $AGENT
wait $AGENT
agent_rc=$?
kill -TERM "${pids[@]}" 2>/dev/null
wait 2>/dev/null
q "SELECT id FROM outbox ORDER BY 1" >"$WORK/outbox-ids"

python3 - "$WORK" "$PAYMENTS" "$MIN_FAULTS" "$agent_rc" <<'PY'
import json, re, sqlite3, sys
work, payments, min_faults, agent_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
outbox = [l.strip() for l in open(work + "/outbox-ids") if l.strip()]
db = sqlite3.connect(work + "/central.sqlite")
rows = db.execute("SELECT id, payload FROM applications").fetchall()
central = [r[0] for r in rows]
refs = {}
for _id, payload in rows:
    ref = (json.loads(payload).get("payment") or {}).get("transaction_ref") or _id
    refs[ref] = refs.get(ref, 0) + 1
central_faults = db.execute("SELECT value FROM counters WHERE name='faults_injected'").fetchone()[0]
proxy = json.load(open(work + "/proxy.json"))
faults = central_faults + sum(proxy["faults"].values())
log = open(work + "/agent.log", errors="replace").read().splitlines()
failed = [l for l in log if "sync attempt failed" in l]
delays = [int(m.group(1)) for l in failed for m in [re.search(r"retry_in_ms=(\d+)", l)] if m]
errors = {}
for l in failed:
    m = re.search(r'error=("(?:[^"\\]|\\.)*"|\S+)', l)
    key = re.sub(r"\d+", "N", m.group(1))[:70] if m else "?"
    errors[key] = errors.get(key, 0) + 1
rss = [tuple(map(int, l.split())) for l in open(work + "/rss") if len(l.split()) == 3]
third = max(1, len(rss) // 3)
first_peak = max(r[1] for r in rss[:third]) if rss else 0
last_peak = max(r[1] for r in rss[-third:]) if rss else 0
fd_first = max(r[2] for r in rss[:third]) if rss else 0
fd_last = max(r[2] for r in rss[-third:]) if rss else 0
# The longest stretch without a successful sync while work was pending, from the agent's log.
lost = sorted(set(outbox) - set(central))
dups = (len(central) - len(set(central))) + sum(n - 1 for n in refs.values() if n > 1)
ok = True
def check(name, cond, detail=""):
    global ok
    print("network: %-4s %s %s" % ("PASS" if cond else "FAIL", name, detail), file=sys.stderr)
    ok = ok and cond
check("agent-exit-clean", agent_rc == 0, "exit %d" % agent_rc)
check("every-payment-an-application", len(outbox) == payments, "%d of %d" % (len(outbox), payments))
check("outbox-at-central-exactly-once", not lost and sorted(outbox) == sorted(central),
      "outbox %d, central %d, missing %d" % (len(outbox), len(central), len(lost)))
check("no-duplicates", dups == 0, "%d" % dups)
check("faults-injected", faults >= min_faults, "%d (central %d, network %s)" % (faults, central_faults, proxy["faults"]))
check("backoff-bounded", not delays or max(delays) <= 1000, "max retry delay %d ms over %d failed attempts" % (max(delays or [0]), len(delays)))
check("rss-flat", last_peak <= first_peak + 8192, "peak %d KiB in the first third, %d KiB in the last" % (first_peak, last_peak))
check("fds-flat", fd_last <= fd_first + 8, "%d then %d" % (fd_first, fd_last))
print("network: agent saw %d failed attempts: %s" % (len(failed), ", ".join("%s x%d" % kv for kv in sorted(errors.items(), key=lambda kv: -kv[1])[:8])), file=sys.stderr)
secs = rss[-1][0] if rss else 0
print("CHAOS-ROW network %d %d %d %d %d %.1f" % (faults, len(outbox), len(set(central)), len(lost), dups, max(delays or [0]) / 1000))
sys.exit(0 if ok else 1)
PY
rc=$?
say "work folder: $WORK"
exit $rc
