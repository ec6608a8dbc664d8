"""``high_risk_payment_burst`` over the 284,807 ULB card payments, scored against the labels.

ULB has no card or merchant identifiers, so the rule's ``merchant.id`` key is absent on every
payment and the rule watches the whole stream; ``event.risk_score`` is the stand-in score of
the mapping (−V14).  The figures below are reported in docs/rules.md.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from cep.mapping.datasets import creditcard_events

from .engine_run import dataset, run_mapped

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data

DATA = "creditcard-ulb/creditcard_time_amount_class.csv.gz"
FRAUDS = 492


def _expected_flagged() -> tuple[set[int], int, int, int]:
    """Independent of the mapping and the engine: scan the CSV for risky payments
    (V14 <= -5, i.e. score >= 5) and cut them into bursts the way the rule does — three
    consecutive risky payments spanning less than 60 s form an alert, the next alert starts
    after it, and a run that is too slow moves on by one payment.  Returns the flagged rows
    and the number of alerts, plus the baseline of the score threshold alone: how many
    payments it flags and how many of those are frauds."""
    risky: list[tuple[int, int]] = []  # (time s, row_id), already in time order
    risky_frauds = 0
    with gzip.open(dataset(DATA), "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if float(row["V14"]) <= -5:
                risky.append((int(row["Time"]), int(row["row_id"])))
                risky_frauds += row["Class"] == "1"
    flagged: set[int] = set()
    alerts, i = 0, 0
    while i + 2 < len(risky):
        if risky[i + 2][0] - risky[i][0] < 60:
            flagged.update(r for _, r in risky[i:i + 3])
            alerts += 1
            i += 3
        else:
            i += 1
    return flagged, alerts, len(risky), risky_frauds


def test_risky_payment_bursts_against_the_fraud_labels(tmp_path: Path) -> None:
    alerts, _, summary = run_mapped(
        ["fraud/high_risk_payment_burst.cep"], creditcard_events(dataset(DATA)), tmp_path)
    assert summary.events == 284_807 and summary.late == 0
    assert len(alerts) == 49
    assert all(a["key"] == {"merchant.id": None} and a["data"]["payments"] == 3 for a in alerts)

    flagged = [e for a in alerts for e in a["match"]["risky"]]
    rows = {e["ulb"]["row_id"] for e in flagged}
    assert len(rows) == len(flagged) == 147  # alerts never share a payment
    true_pos = sum(e["ulb"]["class"] for e in flagged)
    assert true_pos == 98
    # 38 of them are micro-payments (<= 1.00): the card-testing signature
    assert sum(e["ulb"]["class"] for e in flagged if e["transaction"]["amount_minor"] <= 100) == 38
    precision, recall = true_pos / len(flagged), true_pos / FRAUDS
    assert round(precision, 3) == 0.667
    assert round(recall, 3) == 0.199
    alerts_with_fraud = sum(any(e["ulb"]["class"] for e in a["match"]["risky"]) for a in alerts)
    assert alerts_with_fraud == 36

    expected_rows, expected_alerts, threshold_flags, threshold_frauds = _expected_flagged()
    assert rows == expected_rows and len(alerts) == expected_alerts
    # The score threshold alone, one payment at a time: precision 0.599, recall 0.659.
    assert (threshold_flags, threshold_frauds) == (541, 324)
