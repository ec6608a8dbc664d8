#!/usr/bin/env python3
"""Kleene load: ``one or more`` under ``followed by any`` / ``allow combinations`` with long
windows, against Flink CEP's NFA on the same inputs; and many rules over one stream.

Input: ``shared/peers/gen_events.py --events N --users U --seed 7``, rewritten to the field
names the Flink oracle's condition language knows (``type`` → ``name``, ``amount`` →
``price``, user ``u17`` → ``java_id`` 17), so both engines read the same events.

Window series (each pattern at window W, 2W, 4W):

* ``any_pays``: ``begin s where name == "login"`` / ``followed by any p where name ==
  "payment" one or more`` / ``followed by e where name == "password_reset"``;
* ``combos``: ``begin s where name == "login"`` / ``followed by p where name == "payment"
  one or more allow combinations`` / ``followed by e where name == "password_reset"``.

Password resets are rare (0.03 % of events), so partial matches pile up for the whole
window while matches stay few: the load is the partial matches, not the output.

For each: cep's events/s (``run_file`` in this process with ``cep run``'s garbage-collector
policy: decoding, matching, writing alerts; best of ``--repeat``), the peak number of live
partial matches (sampled after every batch of a separate, untimed run), and Flink's
events/s from ``shared/peers/flinkoracle`` (Flink 2.3.0's own Pattern API, NFA and shared
buffer driven the way the event-time operator drives them: ``--mode file``), whose JVM start
and JSON parsing are removed by subtracting a run of the same events with a pattern that
matches nothing.  The two match sets are compared.

Rules series: the first 1, 10 and 100 of a fixed list of simple two-stage rules (a payment
above a threshold — or, second family, inside a price band of its own — then another event
type within 10 minutes), all ``key by java_id``, over the same stream in one operator:
decoding and the key are computed once per event, and the rules' equality guards on ``name``
are tested once per event, not once per rule.  With thresholds a large payment starts a
partial match in every rule below it, so the matching work grows with the rules; with bands
each payment concerns one rule and what grows is only the cost of the rules it does not.

Usage::

    python benchmarks/kleene.py [--events 50000] [--users 500] [--window 5m] [--no-flink]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import PEERS, ensure_events  # noqa: E402

ORACLE = PEERS / "flinkoracle" / "run.sh"
UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

PATTERNS: dict[str, dict[str, Any]] = {
    "any_pays": {
        "rule": ('    begin s where name == "login"\n'
                 '    followed by any p where name == "payment" one or more\n'
                 '    followed by e where name == "password_reset"\n'),
        "stages": [("s", "begin", 'name == "login"', None),
                   ("p", "followedByAny", 'name == "payment"', "relaxed"),
                   ("e", "followedBy", 'name == "password_reset"', None)],
    },
    "combos": {
        "rule": ('    begin s where name == "login"\n'
                 '    followed by p where name == "payment" one or more allow combinations\n'
                 '    followed by e where name == "password_reset"\n'),
        "stages": [("s", "begin", 'name == "login"', None),
                   ("p", "followedBy", 'name == "payment"', "allowCombinations"),
                   ("e", "followedBy", 'name == "password_reset"', None)],
    },
}
NEVER = [("s", "begin", 'name == "no such type"', None)]


def duration_ms(text: str) -> int:
    """``10m`` → 600000."""
    num = text.rstrip("smh")
    unit = text[len(num):] or "ms"
    return int(num) * UNITS[unit]


def rule_text(name: str, body: str, window_ms: int) -> str:
    """One rule keyed by ``java_id`` with ``body`` as its pattern."""
    return (f"rule {name}\n  key by java_id\n  pattern\n{body}  within {window_ms}ms\nend\n")


THENS = ["refund", "password_reset", "logout", "login"]


def family_rules(family: str, n: int) -> list[tuple[str, str, str]]:
    """The first ``n`` rules of a family as ``(name, first stage's condition, type of the
    second stage's event)``.  *thresholds*: a payment above a threshold (50, 70, 90, …);
    *bands*: rule ``i`` wants payments in its own price band (``50 + 20 i`` < price ≤
    ``70 + 20 i``), so each payment concerns one rule and what grows is only the cost of the
    rules it does not concern.  The second stage is a refund, password reset, logout or login
    (in turn), within 10 minutes.  The conditions read the same in both languages."""
    out = []
    for i in range(n):
        lo = 50 + 20 * i
        cond = (f'name == "payment" and price > {lo}' if family == "thresholds" else
                f'name == "payment" and price > {lo} and price <= {lo + 20}')
        out.append((f"{'simple' if family == 'thresholds' else 'band'}_{i}", cond,
                    THENS[i % len(THENS)]))
    return out


RULES_WINDOW_MS = 600_000


def family_text(family: str, n: int) -> str:
    """:func:`family_rules` as rule text, keyed by ``java_id``."""
    return "".join(
        f"rule {name}\n  key by java_id\n  pattern\n    begin big where {cond}\n"
        f'    followed by then where name == "{then}"\n  within 10m\nend\n'
        for name, cond, then in family_rules(family, n))


def family_cases(family: str, n: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`family_rules` as flinkoracle cases, one per rule, over ``events``."""
    return [oracle_case(name, [("big", "begin", cond, None),
                               ("then", "followedBy", f'name == "{then}"', None)],
                        RULES_WINDOW_MS, events)
            for name, cond, then in family_rules(family, n)]


def convert(src: Path, dst: Path) -> int:
    """Rewrite events to the oracle's field names; returns the number of events."""
    import orjson

    n = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for line in fi:
            e = orjson.loads(line)
            fo.write(orjson.dumps({"id": e["id"], "ts": e["ts"], "java_id": int(e["user"][1:]),
                                   "name": e["type"], "price": e["amount"]}) + b"\n")
            n += 1
    return n


# Flink has no cap on partial matches per key; neither has cep here (its default is 10,000
# per key and rule, beyond which the oldest are evicted, which would change the matches).
NO_CAP = 10**9


def run_cep(rules_text: str, events: Path, work: Path, tag: str,
            repeat: int) -> dict[str, Any]:
    """``run_file`` in this process, best of ``repeat``, with ``cep run``'s collector policy
    (:func:`~cep.app.gc_policy.collect_less`); alerts kept for the comparison."""
    return run_cep_alternating({tag: rules_text}, events, work, repeat)[tag]


def run_cep_alternating(texts: dict[str, str], events: Path, work: Path,
                        repeat: int) -> dict[str, dict[str, Any]]:
    """:func:`run_cep` for several rule sets (tag → rule text), their runs alternating —
    ``repeat`` rounds of one run of each — so that a drift in the machine's speed weighs
    on all of them alike.  Per tag: ``events``, ``alerts``, ``seconds`` (every run),
    ``events_per_s`` (best run), ``median_events_per_s``, ``spread``, ``alerts_file``."""
    from cep.app.gc_policy import collect_less
    from cep.app.pipeline import FileRunOptions, run_file
    from cep.app.rules import load_rule_set
    from cep.io.sinks import JsonLinesSink, SinkSet

    rules = {}
    for tag, text in texts.items():
        rule_file = work / f"{tag}.cep"
        rule_file.write_text(text)
        rs = load_rule_set([str(rule_file)])
        assert rs.ok, rs.diagnostics
        rules[tag] = rs.rules
    collect_less()  # as `cep run` does once its rules are made
    times: dict[str, list[float]] = {tag: [] for tag in texts}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(repeat):
        for tag in texts:
            alerts = work / f"{tag}.alerts.jsonl"
            sinks = SinkSet({"alerts": JsonLinesSink(str(alerts))})
            t0 = time.perf_counter()
            summary = run_file(rules[tag], FileRunOptions(
                path=str(events), max_partial_matches_per_key=NO_CAP), sinks)
            sinks.close()
            times[tag].append(time.perf_counter() - t0)
            counts[tag] = (summary.events, summary.sink_counts.get("alerts", 0))
    out = {}
    for tag, ts in times.items():
        n, count = counts[tag]
        best = min(ts)
        out[tag] = {"events": n, "alerts": count, "seconds": ts, "events_per_s": n / best,
                    "median_events_per_s": n / statistics.median(ts),
                    "spread": (max(ts) - best) / best,
                    "alerts_file": str(work / f"{tag}.alerts.jsonl")}
    return out


def peak_partials(rules_text: str, events: Path, work: Path) -> int:
    """Largest number of live partial matches after any batch (an untimed run)."""
    from cep.app.rules import load_rule_set
    from cep.io.codecs import decode_json_chunk
    from cep.io.sources import read_chunks
    from cep.operator.cep_operator import CepOperator

    rule_file = work / "peak.cep"
    rule_file.write_text(rules_text)
    rs = load_rule_set([str(rule_file)])
    op = CepOperator(rs.rules, lambda sink, rec: None, max_partial_matches_per_key=NO_CAP)
    peak = seq = off = 0

    def odd(d: dict[str, Any], line: int) -> int | None:
        raise AssertionError("every event has an integer ts")

    with open(events, "rb") as fh:
        for chunk, n in read_chunks(fh):
            objs = decode_json_chunk(chunk, n)
            assert objs is not None
            seq, off = op.on_batch(objs, "input", "ts", seq, off, odd)
            peak = max(peak, sum(r.partial_matches() for r in op.rules))
    op.finish()
    return peak


def oracle_case(case_id: str, stages: Sequence[tuple[str, str, str, str | None]],
                window_ms: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A flinkoracle case (format in ``shared/peers/flinkoracle/README.md``)."""
    def stage(name: str, cont: str, where: str, inner: str | None) -> dict[str, Any]:
        quant = None if inner is None else {"kind": "oneOrMore", "min": 1, "max": None,
                                            "inner": inner}
        return {"name": name, "contiguity": cont, "where": where, "quantifier": quant,
                "optional": False, "greedy": False, "until": None, "group": None}
    return {"id": case_id, "stages": [stage(*s) for s in stages], "within_ms": window_ms,
            "skip": "noSkip", "key_by": "java_id", "events": events}


def run_oracle(case: dict[str, Any] | list[dict[str, Any]], work: Path
               ) -> tuple[float, dict[str, Any]]:
    """Wall time of one oracle process on ``case`` (or on several cases, one after the
    other) and its result line (for several: ``matches`` of all of them together)."""
    cases = case if isinstance(case, list) else [case]
    path = work / f"{cases[0]['id']}-{len(cases)}.case.jsonl"
    with path.open("w") as fh:
        for c in cases:
            fh.write(json.dumps(c) + "\n")
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", str(ORACLE), "--mode", "file", str(path)],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "FLINK_ORACLE_XMX": "6g"})
    wall = time.perf_counter() - t0
    outs = [json.loads(line) for line in proc.stdout.strip().splitlines()[-len(cases):]]
    for out in outs:
        if out.get("error"):
            raise RuntimeError(f"oracle: {out['error']}")
    if len(outs) == 1:
        return wall, outs[0]
    return wall, {"matches": [m for out in outs for m in out["matches"]]}


def same_matches(alerts_file: str, oracle_matches: list[list[int]]) -> bool:
    """Our alerts and the oracle's matches as multisets of sorted id tuples."""
    ours: Counter[tuple[int, ...]] = Counter()
    with open(alerts_file) as fh:
        for line in fh:
            rec = json.loads(line)
            ours[tuple(sorted(e["id"] for evs in rec["match"].values() for e in evs))] += 1
    theirs = Counter(tuple(sorted(m)) for m in oracle_matches)
    return ours == theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--window", default="5m", help="any_pays' 1× window (then 2× and 4×)")
    ap.add_argument("--combos-window", default="1m", help="combos' 1× window")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--patterns", default="any_pays,combos")
    ap.add_argument("--rules", default="1,10,100")
    ap.add_argument("--no-flink", action="store_true")
    ap.add_argument("--skip-windows", action="store_true", help="only the rules series")
    ap.add_argument("--rules-events", type=int, default=1_000_000,
                    help="the rules series reads gen_events.py --events N --users N/20 "
                         "--seed 42 (the peers' file for 1,000,000)")
    ap.add_argument("--flink-rules-events", type=int, default=50_000,
                    help="the rules series side by side with Flink: 10 and 100 rules read the "
                         "first N events of that file, one rule all of it (the oracle takes "
                         "each rule as a case with its own copy of the events; 0: not run)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kleene.json"))
    args = ap.parse_args()

    raw = ensure_events(args.events, args.users, args.seed)
    work = Path(tempfile.mkdtemp(prefix="cep-kleene-"))
    events_file = work / "events.jsonl"
    n = convert(raw, events_file)
    base = duration_ms(args.window)
    result: dict[str, Any] = {"events": n, "users": args.users, "seed": args.seed,
                              "window_ms": base, "windows": [], "rules": []}
    events: list[dict[str, Any]] = []
    baseline = None
    if not args.no_flink and not args.skip_windows:
        events = [json.loads(line) for line in events_file.open()]
        baseline, _ = run_oracle(oracle_case("never", NEVER, base, events), work)
        result["flink_baseline_s"] = baseline
    for name in [] if args.skip_windows else args.patterns.split(","):
        spec = PATTERNS[name]
        one = duration_ms(args.combos_window) if name == "combos" else base
        for mult in (1, 2, 4):
            w = one * mult
            text = rule_text(name, spec["rule"], w)
            row: dict[str, Any] = {"pattern": name, "window_ms": w, "multiple": mult}
            row["cep"] = run_cep(text, events_file, work, f"{name}_{mult}", args.repeat)
            row["peak_partial_matches"] = peak_partials(text, events_file, work)
            if baseline is not None:
                wall, out = run_oracle(oracle_case(f"{name}_{mult}", spec["stages"], w, events),
                                       work)
                net = max(wall - baseline, 1e-3)
                row["flink"] = {"wall_s": wall, "net_s": net, "events_per_s": n / net,
                                "matches": len(out["matches"])}
                row["identical_to_flink"] = same_matches(row["cep"]["alerts_file"],
                                                         out["matches"])
            result["windows"].append(row)
            fl = row.get("flink", {})
            rate = row["cep"]["events_per_s"]
            print(f"{name:<10} {mult}x {w / 60000:>5.0f} min  cep {rate:>10,.0f} ev/s"
                  f"  alerts {row['cep']['alerts']:>8,}  peak partial "
                  f"{row['peak_partial_matches']:>8,}  flink {fl.get('events_per_s', 0):>10,.0f}"
                  f" ev/s  same {row.get('identical_to_flink', '-')}", flush=True)
    rules_file = work / "rules_events.jsonl"
    result["rules_events"] = convert(
        ensure_events(args.rules_events, max(1, args.rules_events // 20), 42), rules_file)
    for family in ("thresholds", "bands"):
        counts = [int(x) for x in args.rules.split(",")]
        runs = run_cep_alternating({f"{family}_{k}": family_text(family, k) for k in counts},
                                   rules_file, work, args.repeat)
        rows = [{"family": family, "rules": k, **runs[f"{family}_{k}"]} for k in counts]
        for r in rows:
            r["of_one_rule"] = r["events_per_s"] / rows[0]["events_per_s"]
            # each round's runs are seconds apart: the ratio within a round is the least
            # touched by the machine's drifting speed
            r["of_one_rule_by_round"] = [one / t for one, t in
                                         zip(rows[0]["seconds"], r["seconds"], strict=True)]
            r["median_of_one_rule"] = statistics.median(r["of_one_rule_by_round"])
            print(f"{family:<10} {r['rules']:>4} rules  {r['events_per_s']:>10,.0f} ev/s "
                  f"best  (spread {r['spread']:.0%})  alerts {r['alerts']:>8,}  of one rule: "
                  f"best ÷ best {r['of_one_rule']:.1%}, median of the rounds' "
                  f"{r['median_of_one_rule']:.1%}", flush=True)
        result["rules"] += rows
    if not args.no_flink and args.flink_rules_events > 0:
        result["rules_flink"] = rules_vs_flink(rules_file, work, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


def rules_vs_flink(rules_file: Path, work: Path, args: argparse.Namespace
                   ) -> list[dict[str, Any]]:
    """The rules series, cep and Flink side by side on the same events: one rule over the
    whole file, 10 and 100 rules over its first ``args.flink_rules_events`` events (the
    oracle takes each rule as a case with its own copy of the events, so 100 rules over the
    whole file would not fit; one rule over that prefix would take less time than the
    JVM's start varies).  Flink runs each rule as its own NFA over every event (as a job
    with one CEP operator per pattern does); its JVM start and the parsing of each case's
    copy of the events are removed by subtracting a run of as many cases whose pattern
    matches nothing (best of ``args.repeat`` for both).  "Of one rule" compares events/s."""
    subset = work / "rules_events_subset.jsonl"
    with rules_file.open() as fi, subset.open("w") as fo:
        for _, line in zip(range(args.flink_rules_events), fi, strict=False):
            fo.write(line)
    rows: list[dict[str, Any]] = []
    counts = [int(x) for x in args.rules.split(",")]
    for k in counts:
        source = rules_file if k == 1 else subset
        events = [json.loads(line) for line in source.open()]
        n = len(events)
        base = min(run_oracle([oracle_case(f"never_{i}", NEVER, RULES_WINDOW_MS, events)
                               for i in range(k)], work)[0] for _ in range(args.repeat))
        for family in ("thresholds", "bands"):
            ours = run_cep(family_text(family, k), source, work, f"vs_{family}_{k}",
                           args.repeat)
            runs = [run_oracle(family_cases(family, k, events), work)
                    for _ in range(args.repeat)]
            wall, out = min(runs, key=lambda r: r[0])
            net = max(wall - base, 1e-3)
            row = {"family": family, "rules": k, "events": n,
                   "cep_events_per_s": ours["events_per_s"], "flink_wall_s": wall,
                   "flink_baseline_s": base, "flink_events_per_s": n / net,
                   "alerts": ours["alerts"], "flink_matches": len(out["matches"]),
                   "identical_to_flink": same_matches(ours["alerts_file"], out["matches"])}
            rows.append(row)
            print(f"{family:<10} {k:>4} rules on {n:,} events  cep "
                  f"{row['cep_events_per_s']:>10,.0f} ev/s  flink "
                  f"{row['flink_events_per_s']:>10,.0f} ev/s (wall {wall:.1f} s − "
                  f"{base:.1f} s)  same {row['identical_to_flink']}", flush=True)
        del events
    for family in ("thresholds", "bands"):
        mine = [r for r in rows if r["family"] == family]
        for r in mine:
            r["cep_of_one_rule"] = r["cep_events_per_s"] / mine[0]["cep_events_per_s"]
            r["flink_of_one_rule"] = r["flink_events_per_s"] / mine[0]["flink_events_per_s"]
            print(f"{family:<10} {r['rules']:>4} rules: cep {r['cep_of_one_rule']:.1%} of one "
                  f"rule, flink {r['flink_of_one_rule']:.1%}", flush=True)
    return rows


if __name__ == "__main__":
    main()
