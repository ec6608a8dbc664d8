#!/usr/bin/env python3
"""Benchmark: the five patterns of ``shared/peers/patterns.cep`` against Flink CEP, same file,
same machine, same run.

For each pattern it measures

* the whole ``cep run`` process (wall time, events/s, peak RSS via ``/usr/bin/time`` or
  ``resource``), writing the alerts to a file and counting them;
* the engine alone: events decoded in advance, then only the operator (buffering, keying,
  matching, alert building) is timed;
* Flink CEP's DataStream job (``shared/peers/flinkcep/run.sh``, cold JVM, one run) and its match
  file, and whether the two match sets are identical (``shared/peers/compare_matches.py``).

Usage::

    python benchmarks/peers.py [--events 1000000] [--patterns all] [--no-flink] [--out results.json]

Results are printed as a table and written as JSON; ``docs/performance.md`` quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PEERS = SHARED / "peers"
PATTERNS = ["brute_force", "brute_force_relaxed", "fail_then_success", "pay_refund_pay",
            "card_testing"]


def rule_blocks(path: Path) -> dict[str, str]:
    """Split a rule file into ``{rule name: rule text}``."""
    text = path.read_text()
    blocks = re.findall(r"^rule\s+(\w+)\b.*?^end\b", text, flags=re.S | re.M)
    out = {}
    for m in re.finditer(r"^(rule\s+(\w+)\b.*?^end\b)", text, flags=re.S | re.M):
        out[m.group(2)] = m.group(1) + "\n"
    assert len(out) == len(blocks)
    return out


def ensure_events(n: int, users: int, seed: int) -> Path:
    cache = Path(os.environ.get("CEP_BENCH_DATA", tempfile.gettempdir()))
    path = cache / f"cep_events_{n}_{users}_{seed}.jsonl"
    if not path.exists():
        print(f"generating {path} …", file=sys.stderr)
        subprocess.run([sys.executable, str(PEERS / "gen_events.py"), "--events", str(n),
                        "--users", str(users), "--seed", str(seed), "--out", str(path)],
                       check=True)
    return path


def run_cep(rule_file: Path, events: Path, out: Path) -> dict[str, float]:
    """Whole process: wall time and peak RSS of ``cep run``."""
    cep = ROOT / ".venv" / "bin" / "cep"
    cmd = [str(cep), "run", "--rules", str(rule_file), "--input", str(events),
           "--output", str(out), "--quiet"]
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    t0 = time.perf_counter()
    proc = subprocess.run(timer + cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rss_kb = float(proc.stderr.strip().splitlines()[-1]) if timer else float("nan")
    return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024}


def engine_alone(rule_file: Path, events: Path) -> dict[str, float]:
    """Only the operator: events decoded beforehand."""
    sys.path.insert(0, str(ROOT))
    from cep.app.rules import load_rule_set
    from cep.event import Event
    from cep.io.codecs import DeadLetter, TimeSpec, json_decoder
    from cep.operator.cep_operator import CepOperator

    rs = load_rule_set([str(rule_file)])
    assert rs.ok, rs.diagnostics
    decode = json_decoder(TimeSpec())
    evs = []
    with open(events, "rb") as fh:
        for seq, line in enumerate(fh, 1):
            res = decode(line)
            assert not isinstance(res, DeadLetter)
            evs.append(Event(res[1], seq, res[0], "input", seq))
    n = [0]

    def emit(sink: str, record: dict) -> None:
        n[0] += 1

    op = CepOperator(rs.rules, emit)
    t0 = time.perf_counter()
    for ev in evs:
        op.on_event(ev)
    op.finish()
    dt = time.perf_counter() - t0
    return {"engine_s": dt, "engine_events_per_s": len(evs) / dt, "engine_alerts": n[0]}


def run_flink(pattern: str, events: Path, matches: Path) -> dict[str, float]:
    cmd = ["bash", str(PEERS / "flinkcep" / "run.sh"), "--", "--input", str(events),
           "--pattern", pattern, "--mode", "datastream", "--repeat", "1",
           "--matches-out", str(matches)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError("no RESULT line from the Flink peer:\n" + proc.stdout[-2000:])


def compare(a: Path, b: Path) -> bool:
    proc = subprocess.run([sys.executable, str(PEERS / "compare_matches.py"), str(a), str(b)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--patterns", default="all")
    ap.add_argument("--no-flink", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "peers.json"))
    args = ap.parse_args()

    events = ensure_events(args.events, args.users, args.seed)
    blocks = rule_blocks(PEERS / "patterns.cep")
    names = PATTERNS if args.patterns == "all" else args.patterns.split(",")
    work = Path(tempfile.mkdtemp(prefix="cep-bench-"))
    results = []
    for name in names:
        rule_file = work / f"{name}.cep"
        rule_file.write_text(blocks[name])
        alerts = work / f"{name}.alerts.jsonl"
        row: dict[str, object] = {"pattern": name, "events": args.events}
        row.update(run_cep(rule_file, events, alerts))
        row["events_per_s"] = args.events / float(row["wall_s"])  # type: ignore[arg-type]
        row["alerts"] = sum(1 for _ in open(alerts))
        row.update(engine_alone(rule_file, events))
        if not args.no_flink:
            fl_matches = work / f"{name}.flink.jsonl"
            fl = run_flink(name, events, fl_matches)
            row["flink"] = fl
            row["identical_to_flink"] = compare(fl_matches, alerts)
        results.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'pattern':<22}{'alerts':>9}{'cep ev/s':>12}{'engine ev/s':>13}{'RSS MB':>8}"
          f"{'flink ev/s':>12}{'same':>6}")
    for r in results:
        fl = r.get("flink") or {}
        flr = fl.get("events_per_s") or fl.get("throughput_eps") or 0
        print(f"{r['pattern']:<22}{r['alerts']:>9}{r['events_per_s']:>12,.0f}"
              f"{r['engine_events_per_s']:>13,.0f}{r['peak_rss_mb']:>8.0f}{flr:>12,.0f}"
              f"{str(r.get('identical_to_flink', '-')):>6}")


if __name__ == "__main__":
    main()
