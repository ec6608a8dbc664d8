#!/usr/bin/env python3
"""Suppression, aggregate thresholds and unordered sets against plain pattern rules.

Two rule sets of five rules each run over the 1,000,000-event benchmark input
(``shared/peers/gen_events.py --events 1000000 --users 50000 --seed 42``, as
``benchmarks/peers.py``): the five peer patterns (``shared/peers/patterns.cep``, plain
``pattern`` rules) and :data:`MIXED`, five rules written with the new clauses — ``having``
over ``count()``, ``count_distinct``, ``sum`` and ``avg``, two ``all of`` sets, three of the
five with ``suppress for`` — each reading the events that start the peer pattern it stands
beside (failed logins for the two ``brute_force`` rules and ``fail_then_success``, every
payment for ``pay_refund_pay``, payments below 5 for ``card_testing``).  Each run is the
whole ``cep run`` process (interpreter start, compilation, reading, decoding, matching,
writing every alert),
the two sets alternating ``--repeat`` times so that both see the same drift of the host; the
best run of each counts.  ``--engine`` also times the engine alone (events decoded beforehand,
``benchmarks/peers.py``'s ``engine_alone``), alternating the same way.  Target: mixed ÷ plain
≥ 80 %.

``--set wide`` runs :data:`WIDE` instead: rules that read every login or every payment.

Usage::

    python benchmarks/windows.py [--events 1000000] [--users 50000] [--repeat 5] [--engine]
                                 [--set beside|wide] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import PEERS, engine_alone, ensure_events, run_cep  # noqa: E402

MIXED = """
rule failures_threshold
  where type == "login" and not ok
  key by user
  having count() >= 5 within 5m
  suppress for 10m
  emit { user: events.user, failures: count(events) }
end

rule failures_from_many_ips
  where type == "login" and not ok
  key by user
  having count_distinct(ip) >= 3 within 5m
  emit { user: events.user, ips: distinct_count(events.ip) }
end

rule failure_and_reset_any_order
  key by user
  all of (
    fail  where type == "login" and not ok,
    reset where type == "password_reset"
  ) within 10m
  suppress for 1h
  emit { user: fail.user }
end

rule pay_and_refund_any_order
  key by user
  all of (
    pay    where type == "payment",
    refund where type == "refund"
  ) within 5m
  emit { user: pay.user }
end

rule small_payments_sum
  where type == "payment" and amount < 5
  key by user
  having count() >= 3 and sum(amount) < 15 and avg(amount) < 5 within 10m
  suppress for 1h
  emit { user: events.user, total: sum(events.amount) }
end
"""


WIDE = """
rule failures_threshold
  where type == "login" and not ok
  key by user
  having count() >= 5 within 5m
  suppress for 10m
end

rule login_fan_in
  where type == "login"
  key by user
  having count_distinct(ip) >= 3 within 10m
end

rule payment_sum_threshold
  where type == "payment"
  key by user
  having sum(amount) > 2000 and count() >= 2 within 5m
  suppress for 1h
end

rule pay_and_refund_any_order
  key by user
  all of (
    pay    where type == "payment",
    refund where type == "refund"
  ) within 5m
end

rule card_testing_suppressed
  key by user
  pattern
    begin       small where type == "payment" and amount < 5  times 3 or more
    followed by big   where type == "payment" and amount > 500
  within 10m
  suppress for 1h
end
"""
"""``--set wide``: rules that read far more events than the peer patterns they stand for
(every login, every payment), where each event costs a window's work in Python."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--engine", action="store_true", help="also time the engine alone")
    ap.add_argument("--set", choices=["beside", "wide"], default="beside",
                    help="the mixed rules: MIXED (beside the peers) or WIDE")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "windows.json"))
    args = ap.parse_args()
    events = ensure_events(args.events, args.users, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="cep_windows_"))
    mixed = tmp / "mixed.cep"
    mixed.write_text(MIXED if args.set == "beside" else WIDE, encoding="utf-8")
    sets = {"plain": PEERS / "patterns.cep", "mixed": mixed}
    runs: dict[str, list[float]] = {name: [] for name in sets}
    engine: dict[str, list[float]] = {name: [] for name in sets}
    alerts: dict[str, int] = {}
    for i in range(args.repeat):
        for name, rules in sets.items():
            out = tmp / f"{name}.jsonl"
            got = run_cep(rules, events, out)
            runs[name].append(args.events / got["wall_s"])
            alerts[name] = sum(1 for _ in out.open(encoding="utf-8"))
            print(f"run {i + 1} {name}: {runs[name][-1]:,.0f} events/s, "
                  f"{alerts[name]:,} alerts", file=sys.stderr)
            if args.engine:
                engine[name].append(engine_alone(rules, events)["engine_events_per_s"])
                print(f"run {i + 1} {name}: engine alone {engine[name][-1]:,.0f} events/s",
                      file=sys.stderr)
    best = {name: max(v) for name, v in runs.items()}
    result: dict[str, object] = {
        "set": args.set, "events": args.events, "users": args.users, "seed": args.seed,
        "repeat": args.repeat, "events_per_s": runs, "best": best, "alerts": alerts,
        "ratio_best": best["mixed"] / best["plain"],
        "ratio_runs": [m / p for m, p in zip(runs["mixed"], runs["plain"], strict=True)],
    }
    if args.engine:
        result["engine_events_per_s"] = engine
        result["engine_ratio_best"] = max(engine["mixed"]) / max(engine["plain"])
        result["engine_ratio_runs"] = [
            m / p for m, p in zip(engine["mixed"], engine["plain"], strict=True)]
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if "ratio" in k or k in ("best", "alerts")},
                     indent=2))


if __name__ == "__main__":
    main()
