"""The reference matcher against Flink's stored results (no Java needed).

Every stored case (random and hand-written) is run through :func:`reference_run`; matches and
timeouts must equal Flink's as multisets of id lists, late ids as a list, and an error must be
expected exactly when Flink raised one.  Cases outside the reference's documented subset are
left out at collection.
"""

from __future__ import annotations

import pytest

from .fixtures import describe, stored_pairs
from .reference import (
    PatternRejected,
    ReferenceUnsupported,
    parse_pattern,
    reference_run,
    same_result,
)

ALL_PAIRS = stored_pairs()


def _in_subset(case: dict) -> bool:
    """Whether the reference models the case (a pattern it rejects is in: the error is
    compared with Flink's)."""
    try:
        parse_pattern(case)
    except ReferenceUnsupported:
        return False
    except PatternRejected:
        return True
    return True


PAIRS = [(c, f) for c, f in ALL_PAIRS if _in_subset(c)]


def test_fixtures_present() -> None:
    assert len(ALL_PAIRS) >= 2000, "run tests/reference/gen_flink_fixtures.py"
    assert len(PAIRS) >= len(ALL_PAIRS) - 10


@pytest.mark.parametrize(("case", "flink"), PAIRS, ids=[c["id"] for c, _ in PAIRS])
def test_reference_agrees_with_flink(case: dict, flink: dict) -> None:
    ref = reference_run(case)
    assert same_result(ref, flink), describe(case, flink, ref)
