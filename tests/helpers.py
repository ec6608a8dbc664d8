"""Small builders shared by tests that drive the NFA without the rule language, and a
recorder of a function's calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.nfa.compile import compile_nfa
from cep.nfa.pattern import Condition, PatternSpec
from cep.operator.cep_operator import CepOperator


def field_is(field: str, value: Any) -> Condition:
    """Condition ``data[field] == value``."""
    return Condition(lambda e, p: e.data.get(field) == value, f"{field} == {value!r}")


def rule_of(spec: PatternSpec, key: str | None = None, name: str = "r",
            with_timeouts: bool = False) -> CompiledRule:
    """A CompiledRule around ``spec`` keyed by one field (or unkeyed)."""
    return CompiledRule(
        name=name, version="v1", severity="medium", sources=None, header_filter=None,
        key_fn=(lambda d: d.get(key)) if key else (lambda d: ()),
        key_names=(key,) if key else (),
        nfa=compile_nfa(spec), emit_fn=None,
        timeout_emit_fn=(lambda m: {}) if with_timeouts else None,
    )


class Recorder:
    """Collects what the operator emits."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, sink: str, record: dict[str, Any]) -> None:
        self.records.append((sink, record))

    def matches(self) -> list[list[Any]]:
        return [ids(r) for s, r in self.records if s == "alerts" and not r.get("timed_out")]

    def timeouts(self) -> list[list[Any]]:
        return [ids(r) for s, r in self.records if r.get("timed_out")]

    def late(self) -> list[Any]:
        return [r["event"]["id"] for s, r in self.records if s == "late"]


def ids(record: dict[str, Any]) -> list[Any]:
    """Event ids of an alert in event-time order."""
    evs = [e for evs in record["match"].values() for e in evs]
    return [e["id"] for e in sorted(evs, key=lambda e: (e["ts"], e["id"]))]


def feed(rules: list[CompiledRule], events: list[dict[str, Any]], ooo: int = 0,
         finish: bool = True) -> Recorder:
    """Run events (dicts with ``id`` and ``ts``) through an operator."""
    rec = Recorder()
    op = CepOperator(rules, rec, {"input": ooo})
    for seq, ev in enumerate(events, 1):
        op.on_event(Event(ev["ts"], seq, ev, "input", seq))
    if finish:
        op.finish()
    return rec


def record_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str,
                 pick: Callable[..., Any]) -> list[Any]:
    """From now on in this test, each call of ``owner.name`` appends ``pick(*args,
    **kwargs)`` to the returned list, then runs the real function."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(pick(*args, **kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls
