#!/usr/bin/env python3
"""Benchmark: the five patterns of ``shared/peers/patterns.cep`` against Flink CEP, same file,
same machine, same run.

For each pattern it measures

* the whole ``cep run`` process (wall time, events/s, peak RSS via ``/usr/bin/time`` or
  ``resource``), writing the alerts to a file and counting them;
* the engine alone: events decoded in advance (in the 64 KiB batches file mode uses), then
  only the operator (watermark, keying, matching, alert building) is timed;
* Flink CEP's DataStream job (``shared/peers/flinkcep/run.sh``, a cold JVM each time) and its
  match file (``--matches-out``), and whether the two match sets are identical
  (``shared/peers/compare_matches.py``).

Each measurement runs ``--repeat`` times, cep and Flink alternating so that both see the same
machine load; the best run counts and the spread (worst ÷ best − 1) is reported.  The ratio
is cep's whole-process events/s ÷ Flink's cold-job events/s, both best of their runs.

Usage::

    python benchmarks/peers.py [--events 1000000] [--patterns all] [--repeat 3] [--no-flink]

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


def engine_alone(rule_file: Path, events: Path, repeat: int = 1) -> dict[str, float]:
    """Only the operator: events decoded beforehand, in file mode's batches."""
    sys.path.insert(0, str(ROOT))
    from cep.app.rules import load_rule_set
    from cep.io.codecs import decode_json_chunk
    from cep.io.sources import read_chunks
    from cep.operator.cep_operator import CepOperator

    rs = load_rule_set([str(rule_file)])
    assert rs.ok, rs.diagnostics
    batches = []
    with open(events, "rb") as fh:
        for chunk, lines in read_chunks(fh):
            objs = decode_json_chunk(chunk, lines)
            assert objs is not None
            batches.append(objs)
    n = [0]

    def emit(sink: str, record: dict) -> None:
        n[0] += 1

    def odd(obj: dict, line: int) -> int | None:
        raise AssertionError("every event has an integer ts")

    times = []
    seq = 0
    for _ in range(repeat):
        n[0] = 0
        op = CepOperator(rs.rules, emit)
        t0 = time.perf_counter()
        seq = off = 0
        for objs in batches:
            seq, off = op.on_batch(objs, "input", "ts", seq, off, odd)
        op.finish()
        times.append(time.perf_counter() - t0)
    dt = min(times)
    return {"engine_s": dt, "engine_runs_s": times, "engine_events_per_s": seq / dt,
            "engine_alerts": n[0]}


def run_flink(pattern: str, events: Path, matches: Path) -> dict[str, float]:
    cmd = ["bash", str(PEERS / "flinkcep" / "run.sh"), "--", "--input", str(events),
           "--pattern", pattern, "--mode", "datastream", "--repeat", "1",
           "--matches-out", str(matches)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError("no RESULT line from the Flink peer:\n" + proc.stdout[-2000:])


def run_flink_nfa(pattern: str, events: Path, repeat: int) -> dict[str, float]:
    """Flink's NFA alone (events parsed beforehand, no job), ``repeat`` runs in one JVM:
    events/s of each run and of the best, i.e. warmed-up, one."""
    cmd = ["bash", str(PEERS / "flinkcep" / "run.sh"), "--", "--input", str(events),
           "--pattern", pattern, "--mode", "nfa", "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rates = [json.loads(line[len("RESULT "):])["events_per_s"]
             for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not rates:
        raise RuntimeError("no RESULT line from the Flink peer:\n" + proc.stdout[-2000:])
    return {"nfa_warm_events_per_s": max(rates), "nfa_runs_events_per_s": rates}


def compare(a: Path, b: Path) -> bool:
    proc = subprocess.run([sys.executable, str(PEERS / "compare_matches.py"), str(a), str(b)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def load() -> str:
    """The load averages, for the record."""
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--patterns", default="all")
    ap.add_argument("--no-flink", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nfa-repeat", type=int, default=3,
                    help="runs of Flink's NFA alone in one JVM (the best is its warmed-up "
                         "speed, which cep's whole process is compared with; 0: not run)")
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
        row: dict[str, object] = {"pattern": name, "events": args.events,
                                  "load_before": load()}
        cep_runs: list[dict[str, float]] = []
        flink_runs: list[dict[str, float]] = []
        fl_matches = work / f"{name}.flink.jsonl"
        for _ in range(args.repeat):
            cep_runs.append(run_cep(rule_file, events, alerts))
            if not args.no_flink:
                flink_runs.append(run_flink(name, events, fl_matches))
        walls = [r["wall_s"] for r in cep_runs]
        best = min(walls)
        row["wall_s"] = best
        row["wall_runs_s"] = walls
        row["spread"] = max(walls) / best - 1
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in cep_runs)
        row["events_per_s"] = args.events / best
        row["alerts"] = sum(1 for _ in open(alerts))
        row.update(engine_alone(rule_file, events, args.repeat))
        if flink_runs:
            fast = max(flink_runs, key=lambda r: r["events_per_s"])
            rates = [r["events_per_s"] for r in flink_runs]
            row["flink"] = fast
            row["flink_runs_events_per_s"] = rates
            row["flink_spread"] = max(rates) / min(rates) - 1
            row["ratio_to_flink"] = row["events_per_s"] / fast["events_per_s"]
            row["identical_to_flink"] = compare(fl_matches, alerts)
        if not args.no_flink and args.nfa_repeat > 0:
            nfa = run_flink_nfa(name, events, args.nfa_repeat)
            row["flink_nfa"] = nfa
            row["ratio_to_flink_nfa_warm"] = (row["events_per_s"]
                                              / nfa["nfa_warm_events_per_s"])
        row["load_after"] = load()
        results.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'pattern':<22}{'alerts':>9}{'cep ev/s':>12}{'spread':>8}{'engine ev/s':>13}"
          f"{'RSS MB':>8}{'flink ev/s':>12}{'ratio':>7}{'same':>6}{'flink NFA warm':>16}"
          f"{'ratio':>7}")
    for r in results:
        fl = r.get("flink") or {}
        flr = fl.get("events_per_s") or 0
        nfa = r.get("flink_nfa") or {}
        print(f"{r['pattern']:<22}{r['alerts']:>9}{r['events_per_s']:>12,.0f}"
              f"{r['spread']:>8.0%}{r['engine_events_per_s']:>13,.0f}{r['peak_rss_mb']:>8.0f}"
              f"{flr:>12,.0f}{r.get('ratio_to_flink', 0):>7.1f}"
              f"{str(r.get('identical_to_flink', '-')):>6}"
              f"{nfa.get('nfa_warm_events_per_s', 0):>16,.0f}"
              f"{r.get('ratio_to_flink_nfa_warm', 0):>7.2f}")


if __name__ == "__main__":
    main()
