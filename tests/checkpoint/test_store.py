"""The file-mode checkpoint directory: atomic replace, never a torn or stray file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import Recorder, field_is, rule_of

from cep.checkpoint import DirectoryStore, decode, encode
from cep.event import Event
from cep.nfa.pattern import PatternSpec, StageSpec
from cep.operator.cep_operator import CepOperator


def test_save_load_replace_and_delete(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "ckpt")
    assert store.load("input") is None
    store.save("input", b"one")
    store.save("input", b"two")
    assert store.load("input") == b"two"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["input.ckpt"]
    store.delete("input")
    store.delete("input")
    assert store.load("input") is None


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = DirectoryStore(tmp_path)
    store.save("t/0", b"committed")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.save("t/0", b"half written")
    monkeypatch.undo()
    assert store.load("t/0") == b"committed"
    assert [p.name for p in tmp_path.iterdir()] == ["t_0.ckpt"]  # no temporary file left


def test_operator_state_survives_a_round_trip_through_the_directory(tmp_path: Path) -> None:
    spec = PatternSpec((StageSpec("a", "begin", field_is("name", "a")),
                        StageSpec("b", "followed_by", field_is("name", "b"))), within_ms=100)
    rule = rule_of(spec, key="user")
    events = [{"name": "a", "user": "u", "ts": 1}, {"name": "c", "user": "u", "ts": 5},
              {"name": "b", "user": "u", "ts": 9}, {"name": "c", "user": "u", "ts": 20}]
    whole = Recorder()
    op = CepOperator([rule], whole)
    for i, e in enumerate(events, 1):
        op.on_event(Event(e["ts"], i, e, "input", i))
    store = DirectoryStore(tmp_path)
    split = Recorder()
    first = CepOperator([rule], split)
    for i, e in enumerate(events[:2], 1):
        first.on_event(Event(e["ts"], i, e, "input", i))
    store.save("input", encode(first, {"line": 2}))
    second = CepOperator([rule], split)
    data = store.load("input")
    assert data is not None and decode(data, second).meta == {"line": 2}
    for i, e in enumerate(events[2:], 3):
        second.on_event(Event(e["ts"], i, e, "input", i))
    assert split.records == whole.records
    assert [r["match"]["b"][0]["ts"] for _, r in whole.records] == [9]
