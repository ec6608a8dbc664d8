"""The in-order fast paths give exactly the outputs of the buffered algorithm (every event
waits in the buffer until the watermark passes it), in the same order on every sink.

Three ways to feed the same objects are compared record by record: the reference (buffer
every event, as Flink's operator does), :meth:`CepOperator.on_event` (matches an in-order
event at once) and :meth:`CepOperator.on_batch` (the generated loop).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.operator.cep_operator import CepOperator

CORE_RULES = """
rule fails_then_ok
  key by user
  pattern
    begin fails where type == "login" and not ok  times 2 or more consecutive greedy
    next  success where type == "login" and ok
  within 40ms
end

rule pay_refund_pay
  key by user
  pattern
    begin       pay    where type == "payment"
    followed by refund where type == "refund"
    followed by pay2   where type == "payment"
  within 30ms
  on timeout emit { n: count(pay) }
end

rule small_then_big
  where type == "payment"
  key by user
  pattern
    begin       small where amount < 5  times 2 or more
    followed by big   where amount > 50 and ts - small.ts < 25ms
  within 60ms
end

rule unconfirmed
  key by user, dev
  pattern
    begin           add  where type == "add"
    followed by     move where type == "move" within 20ms
    not followed by conf where type == "conf" within 7ms
  after match skip past last event
end
"""
"""Four rules of every shape the fast paths handle: a greedy loop, a timeout emit, a header
`where` with a loop and a partial-match guard, a `not followed by` with stage windows."""

RULES = CORE_RULES + """
rule any_view
  from other
  key by user
  pattern
    begin a where type == "view"
    next  b where type == "view"
end

rule login_then_pay
  key by user
  pattern
    begin a where type == "login" and ok
    followed by b where type == "payment" and amount > 50
  within 30ms
end

rule view_then_refund
  key by user
  pattern
    begin a where type == "view"
    followed by b where type == "refund"
  within 20ms
end

rule views_by_ts
  key by user
  pattern
    begin a where type == "view" and ts > 10
    followed by any b where type == "logout"
  within 15ms
end
"""

TYPES = ["login", "payment", "refund", "view", "logout", "add", "move", "conf"]


def _rules(tmp_path: Path) -> list[CompiledRule]:
    path = tmp_path / "r.cep"
    path.write_text(RULES)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def _objects(rng: random.Random, n: int) -> list[dict[str, Any]]:
    ts = 0
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.55:
            ts += rng.choice([1, 1, 2, 3])
        elif r < 0.85:
            pass  # the same time as the previous event
        elif r < 0.95:
            ts += rng.randint(5, 40)  # lets windows expire through timers
        # else: a late event below
        t: Any = ts if r < 0.95 else max(0, ts - rng.randint(1, 5))
        if rng.random() < 0.01:
            t = rng.choice(["x", None, 1.5, str(ts)])
        d = {"id": i, "ts": t, "user": rng.choice("abcd"), "dev": rng.choice([1, 2]),
             "type": rng.choice(TYPES), "ok": rng.random() < 0.4,
             "amount": rng.choice([1, 2, 3, 100, 7])}
        out.append(d)
    return out


class BufferedOperator(CepOperator):
    """The reference: every event is buffered until the watermark passes it."""

    def on_event(self, ev: Event, input_name: str | None = None) -> None:
        self.events_in += 1
        wm = self.watermarks.current
        if ev.ts <= wm:
            self.late += 1
            self.emit("late", {"reason": "late", "event": ev.data, "watermark": int(wm)})
            return
        if ev.ts >= self.largest_ts:
            self._inorder.append(ev)
            self.largest_ts = ev.ts
        else:
            self._ooo.add((ev.ts, ev.seq, ev))
        new_wm = self.watermarks.observe(input_name or ev.source, ev.ts)
        if new_wm > wm:
            self.advance(new_wm)


def _time(d: dict[str, Any]) -> int | None:
    t = d["ts"]
    if type(t) is int:
        return t
    if type(t) is str and t.isdigit():
        return int(t)
    if type(t) is float:
        return round(t)
    return None


def _run(kind: str, rules: list[CompiledRule], objs: list[dict[str, Any]], ooo: int,
         batch: int = 7) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def emit(sink: str, rec: dict[str, Any]) -> None:
        if sink == "late":
            out.append((sink, rec["event"]["id"]))
        else:
            out.append((sink, rec["rule"], rec.get("timed_out", False), rec["key"],
                        [[e["id"] for e in evs] for evs in rec["match"].values()],
                        rec["alert_id"]))  # type: ignore[arg-type]

    cls = BufferedOperator if kind == "reference" else CepOperator
    op = cls(rules, emit, {"input": ooo})
    if kind == "batch":
        def odd(d: dict[str, Any], line: int) -> int | None:
            t = _time(d)
            if t is None:
                out.append(("dead", d["id"]))
            return t

        seq = off = 0
        for i in range(0, len(objs), batch):
            seq, off = op.on_batch(objs[i:i + batch], "input", "ts", seq, off, odd)
    else:
        seq = 0
        for off, d in enumerate(objs, 1):
            t = _time(d)
            if t is None:
                out.append(("dead", d["id"]))
                continue
            seq += 1
            op.on_event(Event(t, seq, d, "input", off))
    op.finish()
    # Records are compared sink by sink: a late record may come out before the alert of an
    # earlier event that the reference still held in its buffer; no sink sees that.
    per_sink = sorted(out, key=lambda r: r[0])  # stable: each sink keeps its order
    per_sink.append(("stats", op.events_in, op.late))
    return per_sink


@pytest.mark.parametrize("seed", range(30))
def test_fast_paths_equal_the_buffered_reference(tmp_path: Path, seed: int) -> None:
    rules = _rules(tmp_path)
    objs = _objects(random.Random(seed), 400)
    ref = _run("reference", rules, objs, 0)
    assert any(r[0] == "alerts" for r in ref)
    assert _run("event", rules, objs, 0) == ref
    assert _run("batch", rules, objs, 0, batch=1 + seed % 13) == ref


@pytest.mark.parametrize("seed", range(5))
def test_out_of_orderness_takes_the_buffered_path(tmp_path: Path, seed: int) -> None:
    rules = _rules(tmp_path)
    objs = _objects(random.Random(100 + seed), 300)
    ref = _run("reference", rules, objs, 3)
    assert _run("event", rules, objs, 3) == ref
    assert _run("batch", rules, objs, 3) == ref


@pytest.mark.parametrize("seed", range(8))
def test_a_watermark_moved_from_outside_is_kept_by_the_batch_loop(tmp_path: Path,
                                                                    seed: int) -> None:
    """Between batches the watermark is moved past the largest event time from outside (as
    a shuffle task's merger does): events at or below it are late in ``on_batch`` as in
    ``on_event`` (the loop, which finds lateness by the largest time, waits until an event
    the usual way has put the watermark right below the largest time again)."""
    rules = _rules(tmp_path)
    rng = random.Random(200 + seed)
    objs = [d for d in _objects(rng, 400) if type(d["ts"]) is int]
    cuts = sorted(rng.sample(range(1, len(objs)), 25))
    jumps = {c: rng.randint(0, 12) for c in cuts}

    def run(batched: bool) -> list[Any]:
        out: list[Any] = []
        op = CepOperator(rules, lambda sink, rec: out.append((sink, rec.get("alert_id"),
                                                               rec.get("event"))),
                         {"input": 0})
        seq = off = 0
        for lo, hi in zip([0, *cuts], [*cuts, len(objs)], strict=True):
            if lo in jumps and op.largest_ts > float("-inf"):  # past the largest time
                op.advance(op.watermarks.observe("input", int(op.largest_ts) + jumps[lo]))
            if batched:
                seq, off = op.on_batch(objs[lo:hi], "input", "ts", seq, off, _no_odd)
                continue
            for d in objs[lo:hi]:
                seq, off = seq + 1, off + 1
                op.on_event(Event(d["ts"], seq, d, "input", off))
        op.finish()
        return [*out, ("stats", op.events_in, op.late, op.largest_ts)]

    ref = run(False)
    assert any(r[0] == "late" for r in ref)
    assert run(True) == ref


def _no_odd(d: dict[str, Any], line: int) -> int | None:
    raise AssertionError("every time is an int")
