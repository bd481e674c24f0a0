"""The exactly-once ledger of a VM chaos run (powercut.sh, devices.sh), imported by their verdicts.

Compares what the agent acknowledged (WORK/acks: one application id a line, from the console's
CHAOS-ACK lines) with what central stored (WORK/central.sqlite) and the final outbox (one id a
line), prints the common checks as "NAME: PASS|FAIL check detail" on stderr and returns the
figures of the CHAOS-ROW line.
"""
import json
import sqlite3
import sys


class Ledger:
    def __init__(self, name, work, final_outbox):
        self.name = name
        self.ok = True
        self.acks = [l.strip() for l in open(work + "/acks") if l.strip()]
        rows = sqlite3.connect(work + "/central.sqlite").execute("SELECT id, payload FROM applications").fetchall()
        self.central = [r[0] for r in rows]
        refs = {}
        for _id, payload in rows:
            ref = (json.loads(payload).get("payment") or {}).get("transaction_ref") or _id
            refs[ref] = refs.get(ref, 0) + 1
        try:
            self.outbox = [l.strip() for l in open(final_outbox) if l.strip()]
        except OSError:
            self.outbox = None
        self.lost = sorted(set(self.acks) - set(self.central))
        self.dup_ids = len(self.central) - len(set(self.central))
        self.dup_payments = sum(n - 1 for n in refs.values() if n > 1)

    def check(self, name, cond, detail=""):
        print("%s: %-4s %s %s" % (self.name, "PASS" if cond else "FAIL", name, detail), file=sys.stderr)
        self.ok = self.ok and cond

    def check_exactly_once(self, acks_detail):
        """Every acknowledged application at central once, one per payment, central = final outbox."""
        self.check("acknowledged-at-central", not self.lost,
                   "%d acknowledged, %d missing %s" % (len(set(self.acks)), len(self.lost), self.lost[:3]))
        self.check("central-no-duplicate-ids", self.dup_ids == 0)
        self.check("one-application-per-payment", self.dup_payments == 0, "%d payments twice" % self.dup_payments)
        self.check("central-equals-final-outbox", self.outbox is not None and sorted(self.outbox) == sorted(self.central),
                   "outbox %s, central %d" % (None if self.outbox is None else len(self.outbox), len(self.central)))
        self.check("acks-seen", len(self.acks) > 0, acks_detail)

    def row(self, scenario, runs, recovery):
        """The CHAOS-ROW line: scenario, runs, accepted, at central, lost, duplicated, max recovery."""
        return "CHAOS-ROW %s %d %d %d %d %d %.1f" % (scenario, runs, len(set(self.acks)), len(self.central),
                                                     len(self.lost), self.dup_ids + self.dup_payments, recovery)
