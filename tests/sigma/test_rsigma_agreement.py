"""Agreement with rsigma 0.23 on real telemetry: the same (rule, event) pairs.

The 2,407 rules of SigmaHQ's ``rules/windows`` over the raw mordor capture (25,993 flat NXLog
events), no pipeline: rsigma (``rsigma engine eval -r rules/windows --include-event``) and
``cep run`` (every event matched; alerts carry the Sigma id and the event).  Pairs are
compared by the rule's Sigma id and the event's JSON text with sorted keys (the capture has
no duplicate lines).  Every difference would have to be listed in :data:`DEVIATIONS` with
the specification's text that decides it; there is none.

rsigma is run when its binary is there (``$RSIGMA``, else ``~/.cargo/bin/rsigma``); the
figures it reported when this test was written (4,629 matches from 27 rules) are checked
either way.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
RULES = SHARED / "sigma" / "rules" / "windows"
EVENTS = (SHARED / "data" / "windows-security-mordor"
          / "purplesharp_ad_playbook_I_2020-10-22042947.json.gz")

DEVIATIONS: dict[tuple[str, str], str] = {}
"""(Sigma id, event key) → why cep and rsigma differ there; empty: they agree everywhere."""


def _key(event: object) -> str:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()


def _rsigma() -> str | None:
    path = os.environ.get("RSIGMA") or str(Path.home() / ".cargo" / "bin" / "rsigma")
    return path if Path(path).is_file() else shutil.which("rsigma")


@pytest.fixture(scope="module")
def cep_pairs(tmp_path_factory: pytest.TempPathFactory) -> Counter[tuple[str, str]]:
    out = tmp_path_factory.mktemp("sigma") / "alerts.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "cep.cli", "run", str(RULES), "--input", str(EVENTS),
         "--event-time", "@timestamp", "--time-unit", "iso", "--max-out-of-orderness", "1m",
         "--output", str(out), "--quiet"], capture_output=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    pairs: Counter[tuple[str, str]] = Counter()
    with out.open("rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            for ev in rec["match"]["event"]:
                pairs[(rec["data"]["sigma_id"], _key(ev))] += 1
    return pairs


@pytest.mark.shared
@pytest.mark.slow
def test_cep_finds_what_rsigma_reported(cep_pairs: Counter[tuple[str, str]]) -> None:
    assert sum(cep_pairs.values()) == 4629
    assert len({rid for rid, _ in cep_pairs}) == 27


@pytest.mark.shared
@pytest.mark.slow
def test_same_rule_event_pairs_as_rsigma(cep_pairs: Counter[tuple[str, str]],
                                         tmp_path: Path) -> None:
    binary = _rsigma()
    if binary is None:
        pytest.skip("rsigma is not installed (cargo install rsigma --version 0.23.0 --locked)")
    plain = tmp_path / "events.jsonl"
    with gzip.open(EVENTS) as src:
        plain.write_bytes(src.read())
    with plain.open("rb") as stdin:
        done = subprocess.run([binary, "engine", "eval", "-r", str(RULES), "--output-format",
                               "ndjson", "--include-event"], stdin=stdin, capture_output=True,
                              check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    theirs: Counter[tuple[str, str]] = Counter()
    for line in done.stdout.splitlines():
        rec = orjson.loads(line)
        theirs[(rec["rule_id"], _key(rec["event"]))] += 1
    only_cep = set(cep_pairs) - set(theirs)
    only_rsigma = set(theirs) - set(cep_pairs)
    unexplained = (only_cep | only_rsigma) - set(DEVIATIONS)
    assert not unexplained, (f"{len(only_cep)} pairs only cep finds, {len(only_rsigma)} only "
                             f"rsigma: {sorted(unexplained)[:3]}")
    assert cep_pairs == theirs or DEVIATIONS
