#!/usr/bin/env python3
"""Instructions of one engine run per peer pattern, counted by cachegrind, for several trees.

Wall time on this machine drifts with load by tens of percent within minutes; instruction
counts do not.  For each pattern of ``shared/peers/patterns.cep`` and each project tree given
(``--tree DIR``, each with its own ``.venv``; the first is the reference), this runs the tree's
interpreter under ``valgrind --tool=cachegrind`` twice over the same input, in file mode's
64 KiB batches (``benchmarks/peers.py``'s *engine alone*):

* ``--runs 0``: start, rule loading and decoding only;
* ``--runs 1``: the same and one engine run (a new ``CepOperator``, ``on_batch`` over every
  batch, ``finish``);

and reports the difference, the instructions of the engine run.  The cyclic garbage collector
is frozen and switched off after decoding, so what a collection would find (which depends on
the heap and the moment) does not blur the counts; hash randomisation is off
(``PYTHONHASHSEED=0``).  The parsed-rule cache is a private one for the measurement
(``XDG_CACHE_HOME`` in a temporary directory: the user's cache is shared with every other cep
process, which may evict an entry between two counts and add a parse of the rule to one of
them), and each tree loads the rule once, uncounted, first, so it is warm in both counts.
Trees alternate within each pattern.

Usage::

    python benchmarks/engine_instructions.py --tree ../base --tree . [--events 50000]
        [--patterns all]

Needs ``valgrind`` on the ``PATH``.  Prints one line per pattern: each tree's count and its
difference from the first tree's, and whether every tree emitted the same number of alerts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PATTERNS, PEERS, ensure_events, rule_blocks  # noqa: E402

# One engine run as benchmarks/peers.py's engine_alone does it, in the tree it runs from:
# argv = rule file, events file, runs; prints the alerts emitted.
ENGINE = """
import gc, sys
sys.path.insert(0, ".")
from cep.app.rules import load_rule_set
from cep.io.codecs import decode_json_chunk
from cep.io.sources import read_chunks
from cep.operator.cep_operator import CepOperator
rules = load_rule_set([sys.argv[1]]).rules
batches = []
with open(sys.argv[2], "rb") as fh:
    for chunk, lines in read_chunks(fh):
        batches.append(decode_json_chunk(chunk, lines))
alerts = [0]
def emit(sink, record):
    alerts[0] += 1
def odd(obj, line):
    raise AssertionError("every event has an integer ts")
gc.collect()
gc.freeze()
gc.disable()
for _ in range(int(sys.argv[3])):
    op = CepOperator(rules, emit)
    seq = off = 0
    for objs in batches:
        seq, off = op.on_batch(objs, "input", "ts", seq, off, odd)
    op.finish()
    del op
print(alerts[0])
"""


def instructions(tree: Path, rule_file: Path, events: Path, runs: int,
                 env: dict[str, str]) -> tuple[int, int]:
    """``(instructions, alerts)`` of the whole process (``I refs`` of cachegrind)."""
    proc = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         str(tree / ".venv" / "bin" / "python"), "-c", ENGINE, str(rule_file), str(events),
         str(runs)],
        cwd=tree, capture_output=True, text=True, env=env, check=True)
    m = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if m is None:
        raise RuntimeError("no instruction count from cachegrind:\n" + proc.stderr[-2000:])
    return int(m.group(1).replace(",", "")), int(proc.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", required=True,
                    help="a project tree with its .venv (repeat; the first is the reference)")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--patterns", default="all")
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in args.tree]
    events = ensure_events(args.events, args.users, args.seed)
    names = PATTERNS if args.patterns == "all" else args.patterns.split(",")
    blocks = rule_blocks(PEERS / "patterns.cep")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONHASHSEED="0", XDG_CACHE_HOME=str(Path(tmp) / "cache"))
        for name in names:
            rule_file = Path(tmp) / f"{name}.cep"
            rule_file.write_text(blocks[name])
            for tree in trees:  # (warm each tree's parse cache for this rule file)
                subprocess.run([str(tree / ".venv" / "bin" / "python"), "-c", ENGINE,
                                str(rule_file), str(events), "0"], cwd=tree, check=True,
                               capture_output=True, env=env)
            counts: list[tuple[int, int]] = []
            for tree in trees:
                base, _ = instructions(tree, rule_file, events, 0, env)
                total, alerts = instructions(tree, rule_file, events, 1, env)
                counts.append((total - base, alerts))
            ref = counts[0][0]
            parts = [f"{t.name}: {n:,} ({(n / ref - 1) * 100:+.2f} %)"
                     for t, (n, _) in zip(trees, counts, strict=True)]
            same = len({a for _, a in counts}) == 1
            print(f"{name}: one engine run over {args.events:,} events — " + "; ".join(parts)
                  + f"; alerts {counts[0][1]}{'' if same else ' DIFFER'}", flush=True)


if __name__ == "__main__":
    main()
