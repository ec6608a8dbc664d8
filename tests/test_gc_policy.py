"""The collector policy of a run: rules load with the middle generation collected seldom, the
run itself with the thresholds of a long run; what exists at each call is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cep.app.gc_policy import LOADING_MIDDLE, collect_less


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored")
def test_loading_then_running() -> None:
    made = [[] for _ in range(3)]  # (containers that exist before the first call)
    collect_less(loading=True)
    assert gc.get_threshold() == (20_000, LOADING_MIDDLE, 10)
    frozen = gc.get_freeze_count()
    assert frozen >= len(made)
    rules = [[i] for i in range(1000)]  # (what a load makes)
    collect_less()
    assert gc.get_threshold() == (20_000, 20, 10)
    assert gc.get_freeze_count() >= frozen + len(rules)
