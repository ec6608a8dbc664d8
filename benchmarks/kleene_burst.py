#!/usr/bin/env python3
"""Kleene bursts: one key, ``n`` failures then a success, against the rule of the real sshd
burst (``begin fails where outcome == "failure" times 3 or more`` / ``followed by ok where
outcome == "success"`` / ``within 10m``), for ``n`` = 100, 200, 400, 800, 1,600.

Runs use ``cep run``'s garbage-collector policy (:func:`cep.app.gc_policy.collect_less`).

* ``skip past last event``, default settings (cap 10,000): the peak of live partial matches of
  the key and the CPU time of the run (this process's, so other load counts less), with
  cohort pruning (what a rule runs) and — up to ``--plain-max`` — without it (Flink's
  algorithm, cap lifted so that nothing is evicted: its P(n) = n + (n-2)(n-3)/2); then the
  exponents of ``partial ~ n^a`` and ``time ~ n^b`` fitted by least squares on log-log.
* no skip strategy, default settings: every partial match waiting for the success completes,
  so the output is bounded by the cap (at most ``max_partial_matches_per_key`` alerts per
  event, each cut to ``max_events_per_match`` events); reported: alerts, their bytes as JSON
  lines, evictions and CPU time per alert.

The matched alert is checked to be the whole burst (``n`` failures) under ``skip past last
event`` in every run.

Usage::

    python benchmarks/kleene_burst.py [--sizes 100,200,400,800,1600] [--plain-max 400]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cep.app.gc_policy import collect_less  # noqa: E402
from cep.compiler.build import build_rule  # noqa: E402
from cep.compiler.compiled import CompiledRule  # noqa: E402
from cep.event import Event  # noqa: E402
from cep.lang.check import check_rule_file  # noqa: E402
from cep.lang.parse import parse_text  # noqa: E402
from cep.nfa.matcher import KeyState  # noqa: E402
from cep.operator.cep_operator import CepOperator  # noqa: E402

RULE = """
rule burst
  key by user
  pattern
    begin fails where outcome == "failure" times 3 or more
    followed by ok where outcome == "success"
  within 10m
{skip}end
"""


def compiled(skip: str, prune: bool) -> CompiledRule:
    text = RULE.format(skip=f"  after match {skip}\n" if skip else "")
    rf, diags = parse_text(text, "<bench>")
    diags = list(diags) + ([] if diags else check_rule_file(rf))
    assert not [d for d in diags if d.severity == "error"], diags
    return build_rule(rf.rules[0], "<bench>", prune_cohorts=prune)


def burst(n: int) -> list[Event]:
    """``n`` failures 100 ms apart (all inside the window), then a success, of user ``x``."""
    kinds = ["failure"] * n + ["success"]
    return [Event(i * 100, i, {"ts": i * 100, "user": "x", "outcome": o}, "input", i)
            for i, o in enumerate(kinds, 1)]


def run(rule: CompiledRule, n: int, cap: int) -> dict[str, Any]:
    size = [0, 0]
    fails: list[int] = []

    def emit(sink: str, rec: dict[str, Any]) -> None:
        size[0] += len(orjson.dumps(rec)) + 1
        size[1] += 1
        fails.append(len(rec["match"]["fails"]) + rec.get("events_omitted", {}).get("fails", 0))

    op = CepOperator([rule], emit, max_partial_matches_per_key=cap)
    rs = op.rules[0]
    peak = 0
    cpu = 0.0
    for ev in burst(n):
        t0 = time.process_time()
        op.on_event(ev)
        cpu += time.process_time() - t0
        ks = rs.keys.get("x")
        if isinstance(ks, KeyState) and len(ks.a) - 1 > peak:
            peak = len(ks.a) - 1
    t0 = time.process_time()
    op.finish()
    cpu += time.process_time() - t0
    return {"n": n, "cap": cap, "peak_partial_matches": peak, "cpu_s": round(cpu, 4),
            "alerts": size[1], "alert_bytes": size[0], "evictions": rs.evictions,
            "longest_alert_failures": max(fails, default=0)}


def fit(xs: list[float], ys: list[float]) -> float | None:
    """The slope of ``log y`` on ``log x`` (least squares); None with fewer than 2 points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True)
           if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    num = sum((p[0] - mx) * (p[1] - my) for p in pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return round(num / den, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,200,400,800,1600")
    ap.add_argument("--plain-max", type=int, default=400,
                    help="largest n run without cohort pruning (its time grows as n^3)")
    ap.add_argument("--cap", type=int, default=10_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    collect_less()  # (cep run's garbage-collector policy)
    sizes = [int(s) for s in args.sizes.split(",")]
    pruned_rule = compiled("skip past last event", True)
    plain_rule = compiled("skip past last event", False)
    noskip_rule = compiled("", True)
    skip_rows: list[dict[str, Any]] = []
    for n in sizes:
        row: dict[str, Any] = {"n": n}
        # alternating, one n at a time (the host's speed drifts)
        got = run(pruned_rule, n, args.cap)
        assert got["alerts"] == 1 and got["longest_alert_failures"] == n, got
        row["pruned"] = got
        if n <= args.plain_max:
            got = run(plain_rule, n, 10**12)
            assert got["alerts"] == 1 and got["longest_alert_failures"] == n, got
            row["plain"] = got
        skip_rows.append(row)
        print(json.dumps(row), flush=True)
    noskip_rows = []
    for n in sizes:
        got = run(noskip_rule, n, args.cap)
        got["cpu_us_per_alert"] = round(got["cpu_s"] / got["alerts"] * 1e6, 1) if got[
            "alerts"] else None
        noskip_rows.append(got)
        print(json.dumps({"no_skip": got}), flush=True)
    pr = [r["pruned"] for r in skip_rows]
    pl = [r["plain"] for r in skip_rows if "plain" in r]
    summary = {
        "pruned_partial_exponent": fit([r["n"] for r in pr],
                                       [r["peak_partial_matches"] for r in pr]),
        "pruned_time_exponent": fit([r["n"] for r in pr], [r["cpu_s"] for r in pr]),
        "plain_partial_exponent": fit([r["n"] for r in pl],
                                      [r["peak_partial_matches"] for r in pl]),
        "plain_time_exponent": fit([r["n"] for r in pl], [r["cpu_s"] for r in pl]),
    }
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"skip_past_last_event": skip_rows,
                                        "no_skip": noskip_rows, "fit": summary}, indent=1))


if __name__ == "__main__":
    main()
