#!/usr/bin/env python3
"""Turns the fault suite's JSON lines (tests/faults/fault_suite.h) into the
table of docs/reliability.md, between its GENERATED markers.

Usage: faults-report.py REPORT.jsonl docs/reliability.md [--runs N] [--machine TEXT]
"""
import argparse
import json
import statistics
import sys
from collections import OrderedDict

INVARIANTS = [
    ("audit", "a: audit"),
    ("never_blind", "b: never blind"),
    ("single_instance", "c: one instance"),
    ("converged", "d: converges"),
    ("no_secret", "e: no secret"),
    ("clusterd_alive", "f: alive"),
]
BEGIN = "<!-- BEGIN GENERATED: scripts/faults-report.py -->"
END = "<!-- END GENERATED -->"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("doc")
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--machine", default="")
    a = ap.parse_args()
    faults = OrderedDict()
    with open(a.report) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                faults.setdefault(r["fault"], []).append(r)
    rows = ["| fault | runs | " + " | ".join(n for _, n in INVARIANTS) +
            " | recovery (median) |",
            "|---|---|" + "---|" * len(INVARIANTS) + "---|"]
    for fault, results in faults.items():
        cells = []
        for key, _ in INVARIANTS:
            seen = [r[key] for r in results if key in r]
            if not seen:
                cells.append("n/a")
            else:
                ok = sum(1 for v in seen if v)
                cells.append("pass" if ok == len(seen) else f"FAIL {len(seen) - ok}/{len(seen)}")
        times = [r["recovery_ms"] for r in results if r.get("recovery_ms") is not None]
        rec = f"{statistics.median(times) / 1000:.1f} s" if times else "not converged"
        rows.append(f"| {fault} | {len(results)} | " + " | ".join(cells) + f" | {rec} |")
    note = (f"Generated from {a.runs or '?'} run(s) of the suite"
            + (f" on this machine ({a.machine})" if a.machine else "") + ".")
    block = "\n".join([BEGIN, note, "", *rows, END])
    with open(a.doc) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"{a.doc} has no {BEGIN} ... {END} block")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(a.doc, "w") as f:
        f.write(head + block + tail)


if __name__ == "__main__":
    main()
