"""Builds the stored Flink fixtures under ``tests/data/flink/`` (a script, not a test).

* ``cases.jsonl`` / ``expected.jsonl``: ``--n`` cases drawn from :mod:`strategies` with a
  fixed seed (two thirds of profile ``default``, one third ``heavy``; conditions using
  ``if(...)`` in one case out of ten), and Flink's file-mode results for them;
* ``handwritten_cases.jsonl`` / ``handwritten_expected.jsonl``: the cases of
  :mod:`handwritten` and Flink's results.

Flink's results come from the oracle (``shared/peers/flinkoracle``), run as
``run.sh --mode file --timeouts always``; each expected line keeps ``id``, ``matches``,
``timeouts``, ``late`` and ``error`` (plus ``error_phase`` when there is an error).  Drawn cases
for which the reference cannot decide (more than ``MAX_WORLDS`` emission orders allowed by the
skip strategy, see README.md) are replaced by fresh draws; the script reports how many.

Run from the repository root::

    .venv/bin/python tests/reference/gen_flink_fixtures.py            # both sets
    .venv/bin/python tests/reference/gen_flink_fixtures.py --only handwritten
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from reference.handwritten import CASES as HANDWRITTEN  # noqa: E402
from reference.reference import (  # noqa: E402
    ReferenceUnsupported,
    reference_outcomes,
    reference_run,
    same_result,
)
from reference.strategies import random_case  # noqa: E402

DEFAULT_ORACLE = ROOT / ".." / "shared" / "peers" / "flinkoracle" / "run.sh"
DEFAULT_OUT = ROOT / "tests" / "data" / "flink"
DEFAULT_SEED = 20240611
KEPT = ("id", "matches", "timeouts", "late", "error")


def draw_cases(n: int, seed: int) -> tuple[list[dict[str, Any]], int]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    dropped = 0
    i = 0
    while len(out) < n:
        profile = "heavy" if i % 3 == 2 else "default"
        # if(...) has no rule-language equivalent: keep it to one case in ten so that most
        # stored cases also exercise the engine
        case = random_case(rng, f"rand-{seed}-{i:05d}", profile, if_function=i % 10 == 0)
        case["profile"] = profile
        i += 1
        if reference_outcomes(case)[0].get("truncated"):
            dropped += 1
            continue
        out.append(case)
    return out, dropped


def run_oracle(oracle: Path, cases_path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(oracle), "--mode", "file", "--timeouts", "always", str(cases_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    results = []
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        res = {k: raw.get(k) for k in KEPT}
        if raw.get("error") is not None:
            res["error_phase"] = raw.get("error_phase")
        results.append(res)
    return results


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def agreement(cases: list[dict[str, Any]], expected: list[dict[str, Any]]) -> Counter:
    by_id = {e["id"]: e for e in expected}
    tally: Counter = Counter()
    for case in cases:
        try:
            ref = reference_run(case)
        except ReferenceUnsupported:
            tally["unsupported"] += 1
            continue
        ok = same_result(ref, by_id[case["id"]])
        tally["agree" if ok else "DISAGREE"] += 1
        if not ok:
            print(f"  disagreement: {case['id']}", file=sys.stderr)
    return tally


def build(name: str, cases: list[dict[str, Any]], out: Path, oracle: Path) -> None:
    cases_path = out / f"{name}cases.jsonl"
    expected_path = out / f"{name}expected.jsonl"
    write_jsonl(cases_path, cases)
    t0 = time.monotonic()
    expected = run_oracle(oracle, cases_path)
    took = time.monotonic() - t0
    if [e["id"] for e in expected] != [c["id"] for c in cases]:
        raise SystemExit(f"oracle output does not line up with {cases_path}")
    write_jsonl(expected_path, expected)
    errors = sum(1 for e in expected if e["error"] is not None)
    tally = agreement(cases, expected)
    print(
        f"{cases_path.name}: {len(cases)} cases, Flink run {took:.1f}s, "
        f"{errors} with an error, reference vs Flink: {dict(tally)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2500, help="number of random cases")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--oracle", type=Path, default=DEFAULT_ORACLE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", choices=("random", "handwritten"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.only != "handwritten":
        cases, dropped = draw_cases(args.n, args.seed)
        print(f"drew {len(cases)} cases (seed {args.seed}); {dropped} undecidable draws replaced")
        build("", cases, args.out, args.oracle)
    if args.only != "random":
        build("handwritten_", [dict(c) for c in HANDWRITTEN], args.out, args.oracle)
    print(f"total {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
