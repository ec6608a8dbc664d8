#!/usr/bin/env python3
"""SigmaHQ's Windows rules over real telemetry, beside rsigma.

Input: ``shared/data/windows-security-mordor/purplesharp_ad_playbook_I_…json.gz`` (25,993
flat NXLog events, gzip JSON lines) and the 2,407 rules of ``shared/sigma/rules/windows``, no
pipeline (Sigma's field names are the events' own).

Whole process, alternating so that all see the same load (``--repeat`` rounds):

* cep, cold: ``cep run RULES --input FILE --event-time @timestamp --time-unit iso
  --max-out-of-orderness 1m --output ALERTS`` with an empty cache directory
  (``XDG_CACHE_HOME`` a new directory each round: rule loading is pySigma's parse and the
  compilation of every rule, on every CPU (:mod:`cep.sigma.parallel`: the forked worker's
  CPU time is counted, since the run waits for it), and writing the compiled-file cache,
  :mod:`cep.sigma.cache`, which a run leaves to a detached process: its CPU time is not
  counted, and the next run starts once the cache is written), then reading, decoding,
  matching and writing each alert;
* cep, warm: the same command with the cache of an earlier run (one untimed run before
  the first round fills it): the Sigma files come from the cache, the rules are still
  built (code generation) in the process, Python's ``compile()`` of a rule's condition and
  its regexes waiting for the rule's first candidate event (``cep.compiler.deferred``);
* cep at an earlier version (when ``--baseline DIR`` names a directory holding that
  version's ``cep`` package, e.g. ``git archive COMMIT cep | tar -x -C DIR``): the same
  command, run by this project's Python with ``DIR`` first on its path;
* rsigma 0.23 (when ``--rsigma`` names its binary): ``rsigma engine eval -r RULES
  --output-format ndjson < FILE`` on the decompressed file.

Wall time and CPU time (user + system of the child, from ``wait4``) of each run; the number
of alerts and of distinct rules that fired (cold and warm alike); the machine's load average
(1 minute) before and after.

Rule-count series (in this process, rules compiled beforehand, events decoded beforehand):
the engine's CPU time per event with the first N rule files (sorted by path) for N in
``--series``, the rule index's average number of candidate rules per event, and the same
without the index (every rule's first stage tested), to show the per-event cost growing
with the rules an event can concern, not with all rules.

Usage::

    python benchmarks/sigma_mordor.py [--repeat 3] [--rsigma ~/.cargo/bin/rsigma] \
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RULES = SHARED / "sigma" / "rules" / "windows"
EVENTS = (SHARED / "data" / "windows-security-mordor"
          / "purplesharp_ad_playbook_I_2020-10-22042947.json.gz")
OUT = ROOT / "benchmarks" / "results" / "sigma_mordor.json"


def _child(cmd: list[str], stdin: Path | None = None,
           cache: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` (standard input from ``stdin``; ``XDG_CACHE_HOME`` set to ``cache`` when
    given); its wall time and CPU time (user + system) in seconds."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)} if cache is not None else None
    t0 = time.perf_counter()
    with open(stdin or os.devnull, "rb") as src:
        proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"{cmd[0]} failed: status {status}")
    return wall, usage.ru_utime + usage.ru_stime


def _cache_written(cache: Path, timeout_s: float = 60) -> None:
    """Wait until the detached process of a run has written its compiled-file bundle
    under ``cache`` (so that it takes no CPU from the next run)."""
    deadline = time.monotonic() + timeout_s
    while not list((cache / "cep" / "sigma").glob("*.pickle")):
        if time.monotonic() > deadline:
            raise SystemExit(f"no compiled-file cache under {cache} after {timeout_s} s")
        time.sleep(0.01)


def _alerts(path: Path) -> tuple[int, int]:
    rules = set()
    n = 0
    with path.open() as fh:
        for line in fh:
            rec = json.loads(line)
            n += 1
            rules.add(rec["data"]["sigma_id"])
    return n, len(rules)


def whole_process(repeat: int, rsigma: str | None, tmp: Path,
                  baseline: Path | None = None) -> dict[str, Any]:
    alerts = tmp / "alerts.jsonl"
    plain = tmp / "events.jsonl"
    with gzip.open(EVENTS) as src, plain.open("wb") as dst:
        dst.write(src.read())
    def cep(output: Path, tree: Path | None = None) -> list[str]:
        args = ["run", str(RULES), "--input", str(EVENTS), "--event-time", "@timestamp",
                "--time-unit", "iso", "--max-out-of-orderness", "1m", "--output", str(output),
                "--quiet"]
        if tree is None:
            return [str(ROOT / ".venv" / "bin" / "cep"), *args]
        return [str(ROOT / ".venv" / "bin" / "python"), "-c",
                "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'cep'; "
                "from cep.cli import main; main()", str(tree), *args]

    base_alerts = tmp / "alerts-baseline.jsonl"
    cold_alerts = tmp / "alerts-cold.jsonl"
    warm_cache = tmp / "warm-cache"
    _child(cep(alerts), cache=warm_cache)  # fills the warm cache
    _cache_written(warm_cache)
    runs: dict[str, list[tuple[float, float]]] = {"cep_baseline": [], "cep_cold": [],
                                                  "cep_warm": [], "rsigma": []}
    load = [os.getloadavg()[0]]
    for n in range(repeat):
        if baseline is not None:
            runs["cep_baseline"].append(_child(cep(base_alerts, baseline),
                                               cache=tmp / f"baseline-cache-{n}"))
        runs["cep_cold"].append(_child(cep(cold_alerts), cache=tmp / f"cold-cache-{n}"))
        _cache_written(tmp / f"cold-cache-{n}")
        runs["cep_warm"].append(_child(cep(alerts), cache=warm_cache))
        if rsigma:
            runs["rsigma"].append(_child([rsigma, "engine", "eval", "-r", str(RULES),
                                          "--output-format", "ndjson"], plain))
    load.append(os.getloadavg()[0])
    out: dict[str, Any] = {"repeat": repeat, "load_average_1m": load, "cpus": os.cpu_count()}
    for name, rs in runs.items():
        if rs:
            out[name] = {"wall_s": sorted(round(w, 3) for w, _ in rs),
                         "cpu_s": sorted(round(c, 3) for _, c in rs)}
    out["cep_cold"]["alerts"], out["cep_cold"]["rules_fired"] = _alerts(cold_alerts)
    out["cep_warm"]["alerts"], out["cep_warm"]["rules_fired"] = _alerts(alerts)
    if baseline is not None:
        out["cep_baseline"]["alerts"], out["cep_baseline"]["rules_fired"] = _alerts(base_alerts)
    return out


def series(counts: list[int]) -> list[dict[str, Any]]:
    import orjson

    sys.path.insert(0, str(ROOT))
    from cep.app.rules import load_rule_set
    from cep.event import Event
    from cep.operator.cep_operator import CepOperator
    from cep.operator.rule_index import gated
    from cep.sigma.files import sigma_files

    files = [str(p) for p in sigma_files([RULES])]
    with gzip.open(EVENTS) as fh:
        datas = [orjson.loads(line) for line in fh]
    rows = []
    for n in counts:
        rs = load_rule_set(files[:n])
        row: dict[str, Any] = {"rules": len(rs.rules)}
        for indexed in (True, False):
            fired = [0]

            def emit(sink: str, rec: dict[str, Any], fired: list[int] = fired) -> None:
                fired[0] += 1

            op = CepOperator(rs.rules, emit)
            ix = op.rule_index()
            if not indexed:  # every rule tested: the index emptied
                ix.always = list(op.rules)
                ix.always_gated = [gated(rs) for rs in op.rules]
                ix.indexed = 0
            cands = sum(len(ix.candidates(d)) for d in datas) if indexed else 0
            t0 = time.process_time()
            for i, d in enumerate(datas):
                op.on_event(Event(i, i, d))
            op.finish()
            cpu = time.process_time() - t0
            key = "indexed" if indexed else "every_rule"
            row[key] = {"us_per_event": round(cpu / len(datas) * 1e6, 1), "alerts": fired[0]}
            if indexed:
                row[key]["rules_always"] = len(ix.always)
                row[key]["candidates_per_event"] = round(cands / len(datas), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rsigma", default=None, help="path of the rsigma 0.23 binary")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a directory holding an earlier version's cep package")
    ap.add_argument("--series", default="300,600,1200,2407")
    ap.add_argument("--no-series", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        result: dict[str, Any] = {"whole_process": whole_process(args.repeat, args.rsigma,
                                                                 Path(d), args.baseline)}
    print(json.dumps(result["whole_process"]), flush=True)
    if not args.no_series:
        result["series"] = series([int(x) for x in args.series.split(",")])
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
