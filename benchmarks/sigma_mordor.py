#!/usr/bin/env python3
"""SigmaHQ's Windows rules over real telemetry, beside rsigma.

Input: ``shared/data/windows-security-mordor/purplesharp_ad_playbook_I_…json.gz`` (25,993
flat NXLog events, gzip JSON lines) and the 2,407 rules of ``shared/sigma/rules/windows``, no
pipeline (Sigma's field names are the events' own).

Whole process, alternating so that both see the same load (``--repeat`` rounds):

* cep: ``cep run RULES --input FILE --event-time @timestamp --time-unit iso
  --max-out-of-orderness 1m --output ALERTS`` (rule loading included: pySigma's parse, the
  compilation of every rule, reading, decoding, matching and writing each alert);
* rsigma 0.23 (when ``--rsigma`` names its binary): ``rsigma engine eval -r RULES
  --output-format ndjson < FILE`` on the decompressed file.

Wall time and CPU time (user + system of the child, from ``wait4``) of each run; the number
of alerts and of distinct rules that fired.

Rule-count series (in this process, rules compiled beforehand, events decoded beforehand):
the engine's CPU time per event with the first N rule files (sorted by path) for N in
``--series``, the rule index's average number of candidate rules per event, and the same
without the index (every rule's first stage tested), to show the per-event cost growing
with the rules an event can concern, not with all rules.

Usage::

    python benchmarks/sigma_mordor.py [--repeat 3] [--rsigma ~/.cargo/bin/rsigma]
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


def _child(cmd: list[str], stdin: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` (standard input from ``stdin``); its wall time and CPU time (user +
    system) in seconds."""
    t0 = time.perf_counter()
    with open(stdin or os.devnull, "rb") as src:
        proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"{cmd[0]} failed: status {status}")
    return wall, usage.ru_utime + usage.ru_stime


def _alerts(path: Path) -> tuple[int, int]:
    rules = set()
    n = 0
    with path.open() as fh:
        for line in fh:
            rec = json.loads(line)
            n += 1
            rules.add(rec["data"]["sigma_id"])
    return n, len(rules)


def whole_process(repeat: int, rsigma: str | None, tmp: Path) -> dict[str, Any]:
    alerts = tmp / "alerts.jsonl"
    plain = tmp / "events.jsonl"
    with gzip.open(EVENTS) as src, plain.open("wb") as dst:
        dst.write(src.read())
    cep = [str(ROOT / ".venv" / "bin" / "cep"), "run", str(RULES), "--input", str(EVENTS),
           "--event-time", "@timestamp", "--time-unit", "iso", "--max-out-of-orderness", "1m",
           "--output", str(alerts), "--quiet"]
    runs: dict[str, list[tuple[float, float]]] = {"cep": [], "rsigma": []}
    for _ in range(repeat):
        runs["cep"].append(_child(cep))
        if rsigma:
            runs["rsigma"].append(_child([rsigma, "engine", "eval", "-r", str(RULES),
                                          "--output-format", "ndjson"], plain))
    out: dict[str, Any] = {"repeat": repeat}
    for name, rs in runs.items():
        if rs:
            out[name] = {"wall_s": sorted(w for w, _ in rs), "cpu_s": sorted(c for _, c in rs)}
    out["cep"]["alerts"], out["cep"]["rules_fired"] = _alerts(alerts)
    return out


def series(counts: list[int]) -> list[dict[str, Any]]:
    import orjson

    sys.path.insert(0, str(ROOT))
    from cep.app.rules import load_rule_set
    from cep.event import Event
    from cep.operator.cep_operator import CepOperator
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
    ap.add_argument("--series", default="300,600,1200,2407")
    ap.add_argument("--no-series", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        result: dict[str, Any] = {"whole_process": whole_process(args.repeat, args.rsigma,
                                                                 Path(d))}
    print(json.dumps(result["whole_process"]), flush=True)
    if not args.no_series:
        result["series"] = series([int(x) for x in args.series.split(",")])
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
