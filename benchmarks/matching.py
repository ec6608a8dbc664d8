#!/usr/bin/env python3
"""What the matching operators cost per event: ``run_file`` (the body of ``cep run``) over the
1 M-event benchmark input with one single-stage rule keyed by user, whose condition is

* ``literal`` — ``ip in [10 addresses]``, which the C line scanner decides;
* ``cidr`` — ``ip in cidr(two blocks)``, which it does not model (every line is decoded);
* ``like`` — ``user like "u386*"`` (a prefix), ``like_ci`` — ``user like~ "U38?6"`` (RE2);
* ``eq_ci`` — ``user =~ "U386"``;
* ``cidr_after_eq`` — ``type == "payment" and ip in cidr(…)``: the scanner skips every line
  whose ``type`` is not ``payment`` and leaves only those to Python.

Runs alternate, best of R.  Usage::

    python benchmarks/matching.py [--events 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lists import hit_ips  # noqa: E402
from peers import ensure_events  # noqa: E402

from cep.app.pipeline import FileRunOptions, run_file  # noqa: E402
from cep.app.rules import load_rule_set  # noqa: E402
from cep.io.sinks import JsonLinesSink, SinkSet  # noqa: E402


def variants(hits: list[str]) -> dict[str, str]:
    blocks = 'cidr("221.0.0.0/8", "10.0.0.0/8")'
    return {
        "literal": "ip in [" + ", ".join(json.dumps(h) for h in hits) + "]",
        "cidr": f"ip in {blocks}",
        "like": 'user like "u386*"',
        "like_ci": 'user like~ "U38?6"',
        "eq_ci": 'user =~ "U386"',
        "cidr_after_eq": f'type == "payment" and ip in {blocks}',
    }


def engine(rule: Path, events: Path) -> tuple[float, int]:
    rs = load_rule_set([str(rule)])
    assert rs.ok, rs.diagnostics
    sinks = SinkSet({"alerts": JsonLinesSink("/dev/null")})
    t0 = time.perf_counter()
    summary = run_file(rs.rules, FileRunOptions(path=str(events)), sinks)
    took = time.perf_counter() - t0
    sinks.close()
    return took, summary.sink_counts.get("alerts", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "matching.json"))
    args = ap.parse_args()

    events = ensure_events(args.events, args.users, args.seed)
    conds = variants(hit_ips(events, 10))
    runs: dict[str, list[float]] = {name: [] for name in conds}
    alerts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, cond in conds.items():
            files[name] = Path(tmp) / f"{name}.cep"
            files[name].write_text(f"rule {name}\n  key by user\n  pattern\n"
                                   f"    begin a where {cond}\nend\n")
        for _ in range(args.repeat):
            for name, path in files.items():
                took, alerts[name] = engine(path, events)
                runs[name].append(took)
    result = {"events": args.events, "conditions": conds, "alerts": alerts,
              "events_per_s": {k: round(args.events / min(v)) for k, v in runs.items()},
              "runs_s": runs}
    for name in conds:
        print(f"{name:14s} {result['events_per_s'][name]:>10,} events/s "
              f"({alerts[name]:,} alerts)  {conds[name][:60]}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
