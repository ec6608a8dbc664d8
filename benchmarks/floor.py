#!/usr/bin/env python3
"""The floor: the least any Python engine must do per event, against what the engine does.

The floor reads the file in 64 KiB chunks, decodes each chunk with one ``orjson.loads`` call
(the lines joined into an array), and for each object reads the event time, looks its key up
in a dict and evaluates the first stage's condition of ``brute_force`` written by hand, inline:
no events, no buffering, no matching, no output.  Nothing a real engine could skip.

The engine is ``run_file`` (the body of ``cep run``, in this process: no interpreter start or
rule compilation) over the same file with the same rule, writing its alerts to ``/dev/null``.
The figure of merit is engine events/s ÷ floor events/s.  When the C line scanner is built the
engine decodes only the lines some rule wants, so the scanner's own floor (every line
validated, its fields found, key looked up, first condition tested, in C) is reported too.

Usage::

    python benchmarks/floor.py [--events 1000000] [--repeat 3] [--rule brute_force]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import PEERS, ensure_events, rule_blocks  # noqa: E402

CHUNK = 1 << 16


def floor(path: Path) -> int:
    """The floor loop; returns how many events could start a match (so nothing is elided)."""
    loads = orjson.loads
    keys: dict[object, object] = {}
    wanted = 0
    rest = b""
    with open(path, "rb") as fh:
        read = fh.read
        while True:
            block = read(CHUNK)
            if not block:
                break
            end = block.rfind(b"\n")
            chunk = rest + block[:end]
            rest = block[end + 1:]
            for d in loads(b"[" + chunk.replace(b"\n", b",") + b"]"):
                ts = d["ts"]
                if d["user"] in keys or (d["type"] == "login" and not d["ok"]):
                    wanted += ts > 0
    return wanted


def native_floor(path: Path) -> int:
    """The floor of the C line scanner (``cep._prescan``), which the engine uses when it is
    built: read the same chunks, have the scanner validate each line, find its fields, test
    the event time, look the key up and evaluate ``brute_force``'s first condition; a line
    it stops at is only counted.  Returns that count (so nothing is elided)."""
    from cep.io.sources import read_chunks
    from cep.operator.prescan import native

    if native is None:
        raise SystemExit("cep._prescan is not built: run `make install`")

    class Keys:  # a key state holding one key no event has, so every lookup is made
        keys: dict[object, object] = {"": None}

    start = ("and", (("cmp", "==", 2, b"login"), ("not", ("truth", 3))))
    program = native.Program((("ts",), ("user",), ("type",), ("ok",)), 0, (Keys,),
                             (("or", (start, ("held", 1, 0))),))
    low, high = -(1 << 63), (1 << 63) - 1
    stopped = 0
    with open(path, "rb") as fh:
        for chunk, _ in read_chunks(fh):
            pos, n = 0, len(chunk)
            while pos <= n:
                pos = native.skip(program, chunk, pos, low, high, 1 << 20)[0]
                if pos <= n:
                    stopped += 1
                    nl = chunk.find(b"\n", pos)
                    pos = n + 1 if nl < 0 else nl + 1
    return stopped


def engine(rule_file: Path, path: Path) -> int:
    """``run_file`` with one rule; returns the alert count."""
    from cep.app.pipeline import FileRunOptions, run_file
    from cep.app.rules import load_rule_set
    from cep.io.sinks import JsonLinesSink, SinkSet

    rs = load_rule_set([str(rule_file)])
    assert rs.ok, rs.diagnostics
    sinks = SinkSet({"alerts": JsonLinesSink("/dev/null")})
    summary = run_file(rs.rules, FileRunOptions(path=str(path)), sinks)
    sinks.close()
    return summary.sink_counts.get("alerts", 0)


def best_of(fn: Callable[[], int], repeat: int) -> tuple[list[float], int]:
    """Wall times of ``repeat`` runs of ``fn`` and its (last) result."""
    times = []
    out = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rule", default="brute_force")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "floor.json"))
    args = ap.parse_args()

    events = ensure_events(args.events, args.users, args.seed)
    rule_file = Path("/tmp") / f"cep_floor_{args.rule}.cep"
    rule_file.write_text(rule_blocks(PEERS / "patterns.cep")[args.rule])
    # interleave the two so that a change of machine load hits both
    f_times: list[float] = []
    n_times: list[float] = []
    e_times: list[float] = []
    alerts = 0
    for _ in range(args.repeat):
        f_times += best_of(lambda: floor(events), 1)[0]
        if args.rule == "brute_force":
            n_times += best_of(lambda: native_floor(events), 1)[0]
        t, alerts = best_of(lambda: engine(rule_file, events), 1)
        e_times += t
    f_best, e_best = min(f_times), min(e_times)
    row = {
        "events": args.events, "rule": args.rule, "alerts": alerts, "repeat": args.repeat,
        "floor_s": f_times, "engine_s": e_times,
        "floor_events_per_s": args.events / f_best,
        "engine_events_per_s": args.events / e_best,
        "engine_over_floor": f_best / e_best,
        "floor_spread": (max(f_times) - f_best) / f_best,
        "engine_spread": (max(e_times) - e_best) / e_best,
        "median_ratio": statistics.median(f_times) / statistics.median(e_times),
    }
    if n_times:
        row.update({
            "native_floor_s": n_times,
            "native_floor_events_per_s": args.events / min(n_times),
            "engine_over_native_floor": min(n_times) / e_best,
        })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(row, indent=2) + "\n")
    print(f"floor  {row['floor_events_per_s']:>12,.0f} events/s  (best of {args.repeat}, "
          f"spread {row['floor_spread']:.0%})")
    print(f"engine {row['engine_events_per_s']:>12,.0f} events/s  (best of {args.repeat}, "
          f"spread {row['engine_spread']:.0%}, {alerts:,} alerts)")
    print(f"engine ÷ floor = {row['engine_over_floor']:.0%} (medians: {row['median_ratio']:.0%})")
    if n_times:
        print(f"native floor {row['native_floor_events_per_s']:>12,.0f} events/s; "
              f"engine ÷ native floor = {row['engine_over_native_floor']:.0%}")


if __name__ == "__main__":
    main()
