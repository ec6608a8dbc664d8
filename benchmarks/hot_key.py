#!/usr/bin/env python3
"""One hot key at ``max_partial_matches_per_key``, and one looping stage without a skip strategy.

Hot key: ``begin a`` / ``followed by any b`` / ``followed by c``, keyed by ``user``, every event
of key ``x``: ``--a`` events ``a``, then ``--b`` events ``b``.  Every ``b`` forks every partial
match, so the key reaches the cap and from then on each event evicts.  Reported: events/s
(CPU time of this process, so other load on the machine counts less) before the cap and at
the cap, evictions, the eviction warnings logged, and the live partial matches at the end.
At the cap an event steps every partial match of the key, so its cost is bounded by the cap,
not by the input: a lower ``--cap`` makes it proportionally cheaper.

Long match: ``begin a`` / ``followed by b one or more`` / ``followed by c``, one ``a``,
``--loop`` events ``b``, one ``end``: one alert per ``b``, the k-th of k + 2 events.
Reported: input and output bytes (the alerts as JSON lines) with
``max_events_per_match`` at its default and without a limit.

Pipeline: the same hot key inside a whole ``cep run`` (:func:`cep.app.pipeline.run_file`:
reading, decoding, matching, writing alerts) over ``--normal`` events of other keys (each
key ``a``, ``b``, ``end``: one alert, one partial match left waiting for ``b``), the hot
key's ``--a`` + ``--b`` events spread evenly among them, against the same run without the
hot key.  Reported: events/s of both (wall clock, best of ``--repeat``, alternating), their
ratio, and whether the other keys' alerts are the same with and without the hot key (their
order in the output included).

Usage::

    python benchmarks/hot_key.py [--a 30] [--b 3000] [--cap 10000] [--loop 2500] [--out FILE]
        [--pipeline --normal 200000 --repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cep.app.rules import load_rule_set  # noqa: E402
from cep.compiler.compiled import CompiledRule  # noqa: E402
from cep.event import Event  # noqa: E402
from cep.operator.cep_operator import CepOperator  # noqa: E402
from cep.operator.records import MAX_EVENTS_PER_MATCH  # noqa: E402

HOT = """
rule fba
  key by user
  pattern
    begin a where t == "a"
    followed by any b where t == "b"
    followed by c where t == "end"
end
"""

LOOP = """
rule k
  key by user
  pattern
    begin a where t == "a"
    followed by b where t == "b" one or more
    followed by c where t == "end"
  within 1h
end
"""


def compiled(text: str) -> list[CompiledRule]:
    path = Path(tempfile.mkdtemp(prefix="cep-hot-")) / "r.cep"
    path.write_text(text)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def events(kinds: list[str]) -> list[Event]:
    return [Event(i, i, {"ts": i, "user": "x", "t": t}, "input", i)
            for i, t in enumerate(kinds, 1)]


class Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def hot_key(n_a: int, n_b: int, cap: int) -> dict[str, Any]:
    op = CepOperator(compiled(HOT), lambda s, r: None, max_partial_matches_per_key=cap)
    logger = logging.getLogger("cep.operator")
    counter = Count()
    logger.addHandler(counter)
    logger.propagate = False
    rs = op.rules[0]
    below = at = 0.0
    n_below = n_at = 0
    try:
        for ev in events(["a"] * n_a + ["b"] * n_b):
            evicting = rs.partial_matches() >= cap  # (this event will evict)
            t0 = time.process_time()
            op.on_event(ev)
            dt = time.process_time() - t0
            if evicting:
                at += dt
                n_at += 1
            else:
                below += dt
                n_below += 1
    finally:
        logger.removeHandler(counter)
        logger.propagate = True
    return {"a": n_a, "b": n_b, "cap": cap, "events_below_cap": n_below,
            "events_at_cap": n_at,
            "events_per_s_below_cap": n_below / below if below else None,
            "events_per_s_at_cap": n_at / at if at else None,
            "cpu_s": below + at, "evictions": rs.evictions,
            "eviction_warnings": counter.n, "partial_matches_at_end": rs.partial_matches()}


def long_match(n_b: int) -> dict[str, Any]:
    kinds = ["a"] + ["b"] * n_b + ["end"]
    text = "".join(json.dumps({"ts": i, "user": "x", "t": t}) + "\n"
                   for i, t in enumerate(kinds))
    out: dict[str, Any] = {"b": n_b, "input_bytes": len(text.encode())}
    for name, limit in (("default", MAX_EVENTS_PER_MATCH), ("unlimited", None)):
        size = [0, 0]

        def emit(sink: str, rec: dict[str, Any], size: list[int] = size) -> None:
            size[0] += len(orjson.dumps(rec)) + 1  # (a JSON line)
            size[1] += 1

        op = CepOperator(compiled(LOOP), emit, max_events_per_match=limit)
        t0 = time.process_time()
        for ev in events(kinds):
            op.on_event(ev)
        op.finish()
        out[name] = {"max_events_per_match": limit, "alerts": size[1],
                     "alert_bytes": size[0], "cpu_s": time.process_time() - t0,
                     "truncated": op.stats()["rules"]["k"]["truncated"]}
    return out


def pipeline(n_normal: int, n_a: int, n_b: int, cap: int, repeat: int) -> dict[str, Any]:
    from cep.app.gc_policy import collect_less
    from cep.app.pipeline import FileRunOptions, run_file
    from cep.io.sinks import MemorySink, SinkSet

    collect_less()
    normal = [{"user": f"u{i // 3}", "t": ("a", "b", "end")[i % 3]} for i in range(n_normal)]
    hot = [{"user": "hot", "t": "a"}] * n_a + [{"user": "hot", "t": "b"}] * n_b
    step = max(1, n_normal // max(1, len(hot)))
    mixed: list[dict[str, Any]] = []
    h = 0
    for i, d in enumerate(normal):
        mixed.append(d)
        if i % step == step - 1 and h < len(hot):
            mixed.append(hot[h])
            h += 1
    mixed += hot[h:]
    tmp = Path(tempfile.mkdtemp(prefix="cep-hot-"))
    files = {}
    for name, rows in (("without", normal), ("with", mixed)):
        path = tmp / f"{name}.jsonl"
        with path.open("wb") as f:
            for ts, d in enumerate(rows, 1):
                f.write(orjson.dumps({"ts": ts, **d}) + b"\n")
        files[name] = (path, len(rows))
    rules = compiled(HOT)
    best: dict[str, float] = {}
    others: dict[str, list[Any]] = {}
    logger = logging.getLogger("cep.operator")
    logger.propagate = False  # (the eviction warnings are counted by hot_key, not printed)
    try:
        for _ in range(repeat):
            for name, (path, n) in files.items():
                alerts = MemorySink()
                sinks = SinkSet({"alerts": alerts, "late": MemorySink(),
                                 "dead_letter": MemorySink()})
                opts = FileRunOptions(path=str(path), fmt="json",
                                      max_partial_matches_per_key=cap)
                t0 = time.perf_counter()
                run_file(rules, opts, sinks)
                dt = time.perf_counter() - t0
                best[name] = max(best.get(name, 0.0), n / dt)
                others[name] = [(r["key"], r["start"],
                                 [e["t"] for evs in r["match"].values() for e in evs])
                                for r in alerts.records if r["key"] != {"user": "hot"}]
    finally:
        logger.propagate = True
    return {"normal_events": n_normal, "hot_events": len(hot),
            "events_per_s_without_hot_key": round(best["without"]),
            "events_per_s_with_hot_key": round(best["with"]),
            "ratio": round(best["with"] / best["without"], 3),
            "other_keys_alerts": len(others["without"]),
            "other_keys_alerts_same": [(k, m) for k, _, m in others["with"]]
            == [(k, m) for k, _, m in others["without"]]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", type=int, default=30)
    ap.add_argument("--b", type=int, default=3000)
    ap.add_argument("--cap", type=int, default=10_000)
    ap.add_argument("--loop", type=int, default=2500)
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--pipeline", action="store_true", help="only the pipeline comparison")
    ap.add_argument("--normal", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.pipeline:
        result = {"pipeline": pipeline(args.normal, args.a, args.b, args.cap, args.repeat),
                  "hot_key": hot_key(args.a, args.b, args.cap)}
    else:
        result = {"hot_key": hot_key(args.a, args.b, args.cap),
                  "long_match": long_match(args.loop)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
