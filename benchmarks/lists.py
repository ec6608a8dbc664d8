#!/usr/bin/env python3
"""Lists and tables from files: how long a 1,000,000-entry list and table take to load, and
what a membership test costs per event as the list grows (it must not: one hash per test).

Load: ``load_rule_set`` (parse, check, read the files, compile) of a rule file declaring a
list of N lines and a table of N rows, against the same rule file with N = 10; best of R.

Per event: ``run_file`` (the body of ``cep run``) over the 1 M-event benchmark input with one
rule whose only condition is a membership test of the event's ``ip``, so every event is
decoded and tested (the C scanner does not model lists): against a list file of 10 entries,
the same 10 entries padded to N, and the same 10 as a literal ``in [..]``.  The same events
match in all three.  Runs alternate, best of R, so that a change of machine load hits all.

Usage::

    python benchmarks/lists.py [--entries 1000000] [--events 1000000] [--repeat 3]
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

from peers import ensure_events  # noqa: E402

from cep.app.pipeline import FileRunOptions, run_file  # noqa: E402
from cep.app.rules import load_rule_set  # noqa: E402
from cep.io.sinks import JsonLinesSink, SinkSet  # noqa: E402


def hit_ips(events: Path, n: int) -> list[str]:
    """The addresses of the first ``n`` events (they occur in the input)."""
    out: list[str] = []
    with events.open("rb") as fh:
        for line in fh:
            ip = json.loads(line)["ip"]
            if ip not in out:
                out.append(ip)
            if len(out) == n:
                return out
    return out


def write_lists(d: Path, hits: list[str], entries: int) -> None:
    pad = max(0, entries - len(hits))
    with (d / "list.txt").open("w") as fh:
        fh.write("\n".join(hits) + "\n")
        fh.writelines(f"pad{i}\n" for i in range(pad))
    with (d / "table.csv").open("w") as fh:
        fh.write("ip,country,risk\n")
        fh.writelines(f"{ip},BE,{i % 5}\n" for i, ip in enumerate(hits))
        fh.writelines(f"pad{i},FR,{i % 5}\n" for i in range(pad))


RULE = '''list blocklist from "list.txt"
table geo from "table.csv" key ip
rule listed
  key by user
  pattern
    begin a where {test}
  emit {{ risk: geo[a.ip].risk }}
end
'''


def engine(rule_dir: Path, events: Path) -> tuple[float, int]:
    rs = load_rule_set([str(rule_dir / "r.cep")])
    assert rs.ok, rs.diagnostics
    sinks = SinkSet({"alerts": JsonLinesSink("/dev/null")})
    t0 = time.perf_counter()
    summary = run_file(rs.rules, FileRunOptions(path=str(events)), sinks)
    took = time.perf_counter() - t0
    sinks.close()
    return took, summary.sink_counts.get("alerts", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--hits", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lists.json"))
    args = ap.parse_args()

    events = ensure_events(args.events, args.users, args.seed)
    hits = hit_ips(events, args.hits)
    literal = "ip in [" + ", ".join(json.dumps(h) for h in hits) + "]"
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: Path(tmp) / name for name in ("small", "large", "literal")}
        for name, d in dirs.items():
            d.mkdir()
            write_lists(d, hits, args.entries if name == "large" else len(hits))
            (d / "r.cep").write_text(RULE.format(
                test=literal if name == "literal" else "ip in blocklist"))

        load: dict[str, list[float]] = {"small": [], "large": []}
        load_cpu: dict[str, list[float]] = {"small": [], "large": []}
        runs: dict[str, list[float]] = {name: [] for name in dirs}
        alerts: dict[str, int] = {}
        for _ in range(args.repeat):
            for name in ("small", "large"):
                t0, c0 = time.perf_counter(), time.process_time()
                rs = load_rule_set([str(dirs[name] / "r.cep")])
                load[name].append(time.perf_counter() - t0)
                load_cpu[name].append(time.process_time() - c0)
                assert rs.ok, rs.diagnostics
                del rs
            for name, d in dirs.items():
                took, alerts[name] = engine(d, events)
                runs[name].append(took)
    assert len(set(alerts.values())) == 1, alerts

    result = {
        "entries": args.entries, "events": args.events, "alerts": alerts["large"],
        "load_s": {k: min(v) for k, v in load.items()},
        "load_cpu_s": {k: min(v) for k, v in load_cpu.items()},
        "events_per_s": {k: round(args.events / min(v)) for k, v in runs.items()},
        "runs_s": runs, "load_runs_s": load,
    }
    print(f"load of a rule file with a list and a table of {args.entries:,} entries each: "
          f"{result['load_s']['large']:.2f} s, {result['load_cpu_s']['large']:.2f} s of CPU "
          f"(with 10 entries: {result['load_s']['small']:.3f} s)")
    for name in dirs:
        print(f"  {name:8s} {result['events_per_s'][name]:>10,} events/s "
              f"(best of {args.repeat}; {alerts[name]:,} alerts)")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
