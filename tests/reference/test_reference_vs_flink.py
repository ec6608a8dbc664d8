"""The reference matcher against Flink's stored results (no Java needed).

Every stored case (random and hand-written) is run through :func:`reference_run`; matches and
timeouts must equal Flink's as multisets of id lists, late ids as a list, and an error must be
expected exactly when Flink raised one.  Cases outside the reference's documented subset are
skipped.
"""

from __future__ import annotations

import pytest

from .fixtures import describe, stored_pairs
from .reference import ReferenceUnsupported, reference_run, same_result

PAIRS = stored_pairs()


def test_fixtures_present() -> None:
    assert len(PAIRS) >= 2000, "run tests/reference/gen_flink_fixtures.py"


@pytest.mark.parametrize(("case", "flink"), PAIRS, ids=[c["id"] for c, _ in PAIRS])
def test_reference_agrees_with_flink(case: dict, flink: dict) -> None:
    try:
        ref = reference_run(case)
    except ReferenceUnsupported as exc:
        pytest.skip(f"outside the reference's subset: {exc}")
    assert same_result(ref, flink), describe(case, flink, ref)
