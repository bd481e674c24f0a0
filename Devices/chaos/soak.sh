#!/usr/bin/env bash
# Devices/chaos/soak.sh [MINUTES]: continuous checkouts for MINUTES (default 30) on the host's
# loopback, with the agent's memory, file descriptors and database sizes tracked.
#
# kiosk-central (dev PKI, mTLS, 127.0.0.1, ephemeral port) and kiosk-agent with the simulated
# terminal playing the "mixed" scenario without end (declines, expired prompts, ...) and short
# pauses, face liveness checked locally on a synthetic shopper replayed as the camera (made by
# `kioskctl dev synth-shopper` from .cache/faces/astronaut.pgm, Provisioning/fetch-faces.sh; the
# liveness step is simulated when that photo cannot be had, and the run says so).
#
# Every CHAOS_SOAK_SAMPLE_S seconds (default 10) one CSV row goes to .cache/chaos/soak-*.csv:
# the agent's CPU time, VmRSS, threads and open fds, outbox.sqlite and its -wal in bytes,
# checkouts stored and completed, the queue, applications stored at central, central's VmRSS.
# After MINUTES the agent gets SIGTERM (must exit 0), then boots once more without payments until
# its queue is drained (exit 0 again), so that every acknowledged application can be looked for
# at central.
#
# Checks: every application in the outbox (each one an acknowledged enqueue) is at central
# exactly once and central holds nothing else; every completed checkout has its application in
# the outbox; no payment became two applications; after a warm-up (the first 20% of the run)
# memory and fds are bounded: RSS mean of the last quarter <= mean of the second quarter + 8 MiB,
# fds max <= warm-up max + 4; the WAL is bounded (checkpointing works: its largest size after the
# warm-up within the warm-up's largest + 1 MiB, or under 8 MiB) and emptied by the graceful stop.
# The main database grows with the synced rows kept for outbox.retention_synced_hours (72 h by
# default; the purge runs hourly, so not within a soak) and with the final checkouts' rows (no
# purge in the agent calls Outbox.purgeCheckouts yet): reported per application, per checkout and
# per table, not judged.
# Prints "CHAOS-ROW soak MINUTES ACCEPTED AT_CENTRAL LOST DUPLICATED -" last.
# CHAOS_BIN=DIR uses prebuilt binaries from DIR instead of `swift build` + a snapshot.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO" || exit 1
MINUTES=${1:-30}
case "$MINUTES" in '' | *[!0-9]* | 0) echo "usage: $0 [MINUTES]" >&2; exit 2 ;; esac
SAMPLE_S=${CHAOS_SOAK_SAMPLE_S:-10}
DEVICE=kiosk-soak-0001
say() { echo "soak: $*" >&2; }
# shellcheck source=Devices/chaos/lib.sh
. "$HERE/lib.sh"

mkdir -p .cache/chaos
WORK=$(mktemp -d "$REPO/.cache/chaos/soak.XXXXXX")
CSV=$REPO/.cache/chaos/soak-$(date -u +%Y%m%dT%H%M%SZ).csv
chaos_binaries soak "$WORK/bin" || exit 1
"$REPO/Provisioning/dev-pki.sh" "$WORK/pki" "$DEVICE" >/dev/null || { say "dev PKI failed"; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

chaos_central soak "$WORK" || exit 1
pids+=($CENTRAL)

LIVENESS_MODE=camera
if "$REPO/Provisioning/fetch-faces.sh" >"$WORK/faces.log" 2>&1 && [ -f .cache/faces/astronaut.pgm ] &&
    "$BIN/kioskctl" dev synth-shopper --photo .cache/faces/astronaut.pgm --kind live --out "$WORK/shopper" \
        --count 16 --width 640 --height 480 >>"$WORK/faces.log" 2>&1; then
    say "liveness: camera, a synthetic shopper replayed from $WORK/shopper"
else
    LIVENESS_MODE=simulated
    say "liveness: SIMULATED in this run (no face photo: offline? see $WORK/faces.log)"
fi

agent_toml() { # PAYMENTS
    cat <<TOML
[agent]
device_id = "$DEVICE"
merchant_id = "merchant-soak"
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
driver = "simulated"
simulated_scenario = "mixed"
simulated_payments = $1
simulated_interval_ms = 200
simulated_answer_ms = 150
[checkout]
cooldown_s = 0
prompt_timeout_s = 2
answer_grace_ms = 300
[liveness]
mode = "$LIVENESS_MODE"
time_limit_s = 20
[camera]
replay_dir = "$WORK/shopper"
replay_fps = 15
TOML
}
status_json() { "$BIN/kioskctl" status --socket "$WORK/control.sock" --json 2>/dev/null; }
start_agent() { # NAME PAYMENTS: sets AGENT, waits until it answers on the control socket
    agent_toml "$2" >"$WORK/$1.toml"
    "$BIN/kiosk-agent" --config "$WORK/$1.toml" 2>"$WORK/$1.log" &
    AGENT=$!
    pids+=($AGENT)
    for _ in $(seq 300); do
        status_json >/dev/null && return 0
        kill -0 $AGENT 2>/dev/null || break
        sleep 0.1
    done
    tail -n 30 "$WORK/$1.log" >&2
    say "$1: the agent did not come up"
    exit 1
}
stop_agent() { # NAME: SIGTERM, sets AGENT_RC and STOP_S
    local t=$SECONDS
    kill -TERM $AGENT
    wait $AGENT
    AGENT_RC=$?
    STOP_S=$((SECONDS - t))
    say "$1: SIGTERM -> exit $AGENT_RC after ${STOP_S} s"
}

DB=$WORK/state/outbox.sqlite
sample() { # one CSV row, less its time
    local js
    js=$(status_json)
    local counts
    counts=$(python3 -c '
import json, sys
try:
    d = json.loads(sys.argv[1])
except Exception:
    print("- - - -"); sys.exit()
st = d.get("checkouts", {}).get("stored", {}) or {}
q = d.get("queue", {}) or {}
print(sum(st.values()), st.get("completed", 0), q.get("pending", 0) + q.get("in_flight", 0), q.get("synced", 0))
' "$js")
    local central
    central=$("$BIN/kiosk-central" stats --db "$WORK/central.sqlite" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["stored"])' 2>/dev/null || echo -)
    set -- $counts
    echo "$(proc_cpu_ms $AGENT),$(proc_rss_kib $AGENT),$(proc_threads $AGENT),$(proc_fds $AGENT),$(file_bytes "$DB"),$(file_bytes "$DB-wal"),$1,$2,$3,$4,$central,$(proc_rss_kib $CENTRAL)"
}

start_agent agent 1000000
echo "t_s,cpu_ms,rss_kib,threads,fds,db_bytes,wal_bytes,checkouts_stored,checkouts_completed,queue_unsynced,queue_synced,central_stored,central_rss_kib" >"$CSV"
say "${MINUTES} min of checkouts, a sample every ${SAMPLE_S} s to $CSV (work folder $WORK)"
T0=$SECONDS
END=$((T0 + MINUTES * 60))
n=0
while :; do
    kill -0 $AGENT 2>/dev/null || { tail -n 30 "$WORK/agent.log" >&2; say "the agent died"; exit 1; }
    row=$(sample)
    echo "$((SECONDS - T0)),$row" >>"$CSV"
    if [ $((n % (300 / SAMPLE_S > 0 ? 300 / SAMPLE_S : 1))) = 0 ]; then
        IFS=, read -r s_t _ s_rss s_thr s_fds s_db s_wal s_ck s_done s_q s_syn s_cen _ < <(tail -n 1 "$CSV")
        say "$(printf '%5d s: rss %6d KiB, %3s threads, %3s fds, db %9s B, wal %8s B, %5s checkouts (%s completed), %s unsynced, %s at central' \
            "$s_t" "${s_rss:-0}" "$s_thr" "$s_fds" "$s_db" "$s_wal" "$s_ck" "$s_done" "$s_q" "$s_cen")"
    fi
    n=$((n + 1))
    [ "$SECONDS" -lt "$END" ] || break
    next=$((T0 + n * SAMPLE_S))
    [ "$next" -gt "$END" ] && next=$END
    while [ "$SECONDS" -lt "$next" ]; do sleep 1; done
done
status_json >"$WORK/status-end.json"
stop_agent agent
RC1=$AGENT_RC
echo "$(file_bytes "$DB") $(file_bytes "$DB-wal")" >"$WORK/after-stop"

# Drain: the same state, no more payments, until nothing is left to sync.
start_agent drain 0
for _ in $(seq 600); do
    python3 -c 'import json,sys; q=json.loads(sys.argv[1])["queue"]; sys.exit(0 if q["pending"] + q["in_flight"] == 0 else 1)' \
        "$(status_json)" 2>/dev/null && break
    sleep 0.2
done
stop_agent drain
RC2=$AGENT_RC
kill -TERM $CENTRAL 2>/dev/null
wait $CENTRAL 2>/dev/null

python3 - "$WORK" "$CSV" "$MINUTES" "$RC1" "$RC2" "$LIVENESS_MODE" <<'PY'
import csv, json, sqlite3, sys
work, csv_path, minutes, rc1, rc2, liveness = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ok = True
def check(name, cond, detail=""):
    global ok
    print("soak: %-4s %s %s" % ("PASS" if cond else "FAIL", name, detail), file=sys.stderr)
    ok = ok and cond
def num(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None
rows = [{k: num(v) for k, v in r.items()} for r in csv.DictReader(open(csv_path))]
rows = [r for r in rows if r["rss_kib"] is not None and r["fds"] is not None]
agent = sqlite3.connect("file:%s/state/outbox.sqlite?mode=ro" % work, uri=True)
outbox = dict(agent.execute("SELECT id, state FROM outbox"))
checkouts = agent.execute("SELECT state, application_id FROM checkout").fetchall()
central_db = sqlite3.connect("file:%s/central.sqlite?mode=ro" % work, uri=True)
crow = central_db.execute("SELECT id, payload FROM applications").fetchall()
central = [r[0] for r in crow]
refs = {}
for _id, payload in crow:
    try:
        ref = (json.loads(payload).get("payment") or {}).get("transaction_ref") or _id
    except ValueError:
        ref = _id
    refs[ref] = refs.get(ref, 0) + 1
completed = [a for s, a in checkouts if s == "completed"]
states = {}
for s, _ in checkouts:
    states[s] = states.get(s, 0) + 1
lost = sorted(set(outbox) - set(central))
extra = sorted(set(central) - set(outbox))
dups = (len(central) - len(set(central))) + sum(n - 1 for n in refs.values() if n > 1)
db_after, wal_after = map(int, open(work + "/after-stop").read().split())

dur = rows[-1]["t_s"] if rows else 0
warm = [r for r in rows if r["t_s"] < 0.2 * dur]
rest = [r for r in rows if r["t_s"] >= 0.2 * dur]
q2 = [r for r in rows if 0.25 * dur <= r["t_s"] < 0.5 * dur]
q4 = [r for r in rows if r["t_s"] >= 0.75 * dur]
mean = lambda xs: sum(xs) / len(xs) if xs else 0
def fig(key, unit=1, fmt="%d"):
    xs = [r[key] for r in rows]
    return ("first " + fmt + ", max " + fmt + ", last " + fmt) % (xs[0] / unit, max(xs) / unit, xs[-1] / unit)
def slope(key):  # least squares over the rows after the warm-up, per hour
    xs = [r["t_s"] for r in rest]; ys = [r[key] for r in rest]
    if len(xs) < 2: return 0.0
    mx, my = mean(xs), mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 3600 if den else 0.0
def growth(rs, key, per):  # bytes per unit of `per` between the first and last row of rs
    if len(rs) < 2 or rs[-1][per] == rs[0][per]: return None
    return (rs[-1][key] - rs[0][key]) / (rs[-1][per] - rs[0][per])

print("soak: %d min, %d samples, liveness %s" % (minutes, len(rows), liveness), file=sys.stderr)
if rows:
    last = rows[-1]
    rate = last["checkouts_stored"] / (dur / 60) if dur else 0
    print("soak: checkouts %d (%s), %.1f per minute; applications %d, %.1f per minute" % (
        last["checkouts_stored"], ", ".join("%s %d" % kv for kv in sorted(states.items())), rate,
        last["checkouts_completed"], last["checkouts_completed"] / (dur / 60) if dur else 0), file=sys.stderr)
    if q2 and q4 and len(q2) > 1 and len(q4) > 1:
        r2 = (q2[-1]["checkouts_stored"] - q2[0]["checkouts_stored"]) / max(1, q2[-1]["t_s"] - q2[0]["t_s"]) * 60
        r4 = (q4[-1]["checkouts_stored"] - q4[0]["checkouts_stored"]) / max(1, q4[-1]["t_s"] - q4[0]["t_s"]) * 60
        print("soak: rate %.1f checkouts/min in the second quarter, %.1f in the last" % (r2, r4), file=sys.stderr)
    print("soak: agent RSS MiB: %s; mean %.1f in the second quarter, %.1f in the last; slope after warm-up %+.1f MiB/h" % (
        fig("rss_kib", 1024, "%.1f"), mean([r["rss_kib"] for r in q2]) / 1024, mean([r["rss_kib"] for r in q4]) / 1024,
        slope("rss_kib") / 1024), file=sys.stderr)
    print("soak: agent fds: %s; threads: %s" % (fig("fds"), fig("threads")), file=sys.stderr)
    print("soak: outbox.sqlite bytes: %s; after the stop %d" % (fig("db_bytes"), db_after), file=sys.stderr)
    print("soak: outbox.sqlite-wal bytes: %s; after the stop %d" % (fig("wal_bytes"), wal_after), file=sys.stderr)
    # The main file only grows when the WAL is checkpointed into it (every ~1000 pages), so its
    # growth is told per row from the checkpointed file after the stop, not judged per quarter.
    payload = agent.execute("SELECT coalesce(avg(payload_size), 0) FROM outbox").fetchone()[0]
    document = agent.execute("SELECT coalesce(avg(length(document)), 0) FROM checkout").fetchone()[0]
    print("soak: database after the stop: %d B for the %d applications and %d checkouts it keeps: %.0f B per application,"
          " %.0f B per checkout; average payload %.0f B, checkout document %.0f B" % (
        db_after, len(outbox), len(checkouts), db_after / max(1, len(outbox)), db_after / max(1, len(checkouts)), payload, document),
        file=sys.stderr)
    try:  # where the bytes are (dbstat is missing from some SQLite builds)
        tables = agent.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        print("soak: database by table and index: %s" % ", ".join("%s %d" % t for t in tables[:8]), file=sys.stderr)
    except sqlite3.Error:
        pass
    print("soak: agent CPU: %.0f s over %d s (%.0f%% of one core)" % (last["cpu_ms"] / 1000, dur, last["cpu_ms"] / 10 / dur if dur else 0), file=sys.stderr)
    print("soak: central RSS MiB: %s" % fig("central_rss_kib", 1024, "%.1f"), file=sys.stderr)

check("agent-exit-clean", rc1 == 0 and rc2 == 0, "SIGTERM after the soak -> %d, after the drain -> %d" % (rc1, rc2))
check("checkouts-ran", bool(rows) and len(completed) > 0, "%d completed" % len(completed))
check("completed-have-applications", all(a in outbox for a in completed),
      "%d of %d completed checkouts have their application in the outbox" % (sum(a in outbox for a in completed), len(completed)))
check("outbox-at-central-exactly-once", not lost and not extra and len(central) == len(set(central)),
      "outbox %d (%s), central %d, missing %d, unknown %d" % (len(outbox), ", ".join("%s %d" % (s, list(outbox.values()).count(s)) for s in sorted(set(outbox.values()))), len(central), len(lost), len(extra)))
check("no-duplicates", dups == 0, "%d" % dups)
if warm and q2 and q4:
    m2, m4 = mean([r["rss_kib"] for r in q2]), mean([r["rss_kib"] for r in q4])
    check("rss-bounded", m4 <= m2 + 8192, "last-quarter mean %.1f MiB <= second-quarter mean %.1f MiB + 8" % (m4 / 1024, m2 / 1024))
    fw, fr = max(r["fds"] for r in warm), max(r["fds"] for r in rest)
    check("fds-bounded", fr <= fw + 4, "max %d after the warm-up, %d during it" % (fr, fw))
    ww, wr = max(r["wal_bytes"] for r in warm), max(r["wal_bytes"] for r in rest)
    check("wal-bounded", wr <= ww + (1 << 20) or wr <= 8 << 20, "max %d B after the warm-up, %d B during it" % (wr, ww))
    check("wal-emptied-on-stop", wal_after == 0, "%d B after SIGTERM" % wal_after)
else:
    check("long-enough", False, "too few samples to judge (%d)" % len(rows))
print("CHAOS-ROW soak %d %d %d %d %d -" % (minutes, len(outbox), len(set(central) & set(outbox)), len(lost), dups))
sys.exit(0 if ok else 1)
PY
rc=$?
say "samples: $CSV; work folder: $WORK"
exit $rc
