#!/usr/bin/env python3
"""Two project trees side by side on the peer patterns: wall time, alternating, and alerts.

For each pattern of ``shared/peers/patterns.cep`` and each of ``--rounds`` rounds, each tree
(``--tree DIR``, twice: the reference first; each with its own ``.venv``) measures, in its own
interpreter, ``benchmarks/peers.py``'s *engine alone* (decoded batches through the operator,
one run) and the whole ``cep run`` process writing its alerts to a file.  The trees take turns
first from round to round, so both see the same drift of this machine's speed.  The alerts of
the two trees' ``cep run`` are compared byte for byte after every round.

Usage::

    python benchmarks/peers_ab.py --tree ../base --tree . [--events 1000000] [--rounds 5]
        [--patterns all]

Prints, per pattern, the best and the median of each measurement for both trees and their
difference, the alerts and whether they were identical in every round.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PATTERNS, PEERS, ensure_events, rule_blocks  # noqa: E402

# peers.engine_alone from the tree it runs in: argv = rule file, events file.
ENGINE = ("import json, sys\n"
          "from pathlib import Path\n"
          "sys.path.insert(0, 'benchmarks')\n"
          "import peers\n"
          "print(json.dumps(peers.engine_alone(Path(sys.argv[1]), Path(sys.argv[2]))))\n")


def _engine(tree: Path, rule_file: Path, events: Path) -> dict[str, float]:
    out = subprocess.run([str(tree / ".venv" / "bin" / "python"), "-c", ENGINE,
                          str(rule_file), str(events)],
                         cwd=tree, capture_output=True, text=True, check=True).stdout
    got: dict[str, float] = json.loads(out)
    return got


def _process(tree: Path, rule_file: Path, events: Path, alerts: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(tree / ".venv" / "bin" / "cep"), "run", "--rules", str(rule_file),
                    "--input", str(events), "--output", str(alerts), "--quiet"], check=True)
    return time.perf_counter() - t0


def _diff(a: float, b: float) -> str:
    return f"{(b / a - 1) * 100:+.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", required=True,
                    help="a project tree with its .venv (twice: the reference first)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--patterns", default="all")
    args = ap.parse_args()
    if len(args.tree) != 2:
        ap.error("give --tree exactly twice")
    trees = [Path(t).resolve() for t in args.tree]
    events = ensure_events(args.events, args.users, args.seed)
    names = PATTERNS if args.patterns == "all" else args.patterns.split(",")
    blocks = rule_blocks(PEERS / "patterns.cep")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rule_file = Path(tmp) / f"{name}.cep"
            rule_file.write_text(blocks[name])
            engine: list[list[float]] = [[], []]
            process: list[list[float]] = [[], []]
            identical = True
            n_alerts = 0
            for r in range(args.rounds):
                for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                    got = _engine(trees[i], rule_file, events)
                    engine[i].append(got["engine_s"])
                    n_alerts = int(got["engine_alerts"])
                    process[i].append(_process(trees[i], rule_file, events,
                                               Path(tmp) / f"alerts{i}.jsonl"))
                identical &= filecmp.cmp(Path(tmp) / "alerts0.jsonl",
                                         Path(tmp) / "alerts1.jsonl", shallow=False)
            parts = [name]
            for label, runs in (("engine", engine), ("cep run", process)):
                best = [min(x) for x in runs]
                med = [statistics.median(x) for x in runs]
                parts.append(f"{label}: best {best[0]:.3f} → {best[1]:.3f} s "
                             f"({_diff(*best)}), median {med[0]:.3f} → {med[1]:.3f} s "
                             f"({_diff(*med)})")
            parts.append(f"{n_alerts} alerts, {'identical' if identical else 'DIFFERENT'}")
            print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
