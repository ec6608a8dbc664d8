"""File mode's native fast path: lines no rule wants are passed over without being decoded.

Reading and decoding every line of a large file costs more than all the matching most rule
sets do (see docs/performance.md, *The floor*).  When the optional C extension
:mod:`cep._prescan` is built, :class:`Prescan` lets it walk a chunk of JSON lines and pass
over each line that

* is one JSON object in a strict subset of RFC 8259 that orjson decodes the same way,
* has an integer event time ``t`` (ms) with *largest so far* ≤ ``t`` ≤ *earliest timer*,
* and for which every rule's *gate* is certainly false.

A rule's gate is the test of the generated loop of :mod:`cep.operator.fastpath`, as a
:mod:`cep.compiler.predicate`: "the rule's header ``where`` holds, and either the event's key
holds state (and, for a ``followed by``-only automaton whose expiry is silent, some TAKE
guard accepts it) or the first stage's condition holds".  Such an event would only count and
advance the largest event time seen — exactly what is done for it.  An in-order line some
rules want is listed, with those rules, and the scan goes on: the lines listed are then
decoded and dispatched to just those rules, in order.  Until then the scanner treats the keys
of listed lines as holding state (matching them may create it) and stops before any line a
timer could concern — one past the earliest timer, or past the first listed line's time plus
the smallest window (the earliest a timer created by matching the list could be due) — so
what it passes over is what the generated loop would.  Such a line first has the timers up to
its time fired, as the generated loop does, and is looked at again; a late, malformed,
unusual or undecidable line is handled in Python exactly as without the scanner.

Used only where :meth:`CepOperator.on_batch` would take its in-order fast path (one input,
``max_out_of_orderness`` 0, nothing buffered) and the time unit is ms.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson

from cep.compiler.predicate import FALSE, TRUE, UNKNOWN, Pred, condition_predicate, join
from cep.event import Event, nesting_within
from cep.lang.operators import OPERATORS, Operator, Scan
from cep.operator.cep_operator import CepOperator
from cep.operator.gate import Held, gate_of
from cep.operator.key_store import RuleState

native: ModuleType | None
if os.environ.get("CEP_PUREPYTHON") == "1":  # the pure path forced (msgpack's switch)
    native = None
else:
    try:  # the extension is optional: without a C compiler the pure Python path is used
        from cep import _prescan as native
    except ImportError:  # pragma: no cover - depends on the build
        native = None

__all__ = ["AVAILABLE", "MessageLines", "Prescan", "build_program", "holders_of"]

AVAILABLE = native is not None
"""Whether the C extension was built and is used (``CEP_PUREPYTHON=1`` in the environment
forces the pure Python path, as msgpack's ``MSGPACK_PUREPYTHON`` does)."""

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _or(items: list[Pred]) -> Pred:
    return join("or", items)


def _and(items: list[Pred]) -> Pred:
    return join("and", items)


def gates_of(rules: Sequence[RuleState], source: str, time_field: str
             ) -> tuple[tuple[tuple[str, ...], ...], list[RuleState], list[Pred]] | None:
    """The field paths (slot ``i`` is ``paths[i]``, slot 0 the event time), the rules with a
    gate and their gates, for ``rules`` reading ``source``; ``None`` when the scanner cannot
    help: a draining version, a key that is not one field path, or a rule any event can
    start."""
    slots: dict[tuple[str, ...], int] = {(time_field,): 0}

    def slot_of(path: tuple[str, ...]) -> int:
        return slots.setdefault(path, len(slots))

    owners: list[RuleState] = []
    gates: list[Pred] = []
    for rs in rules:
        if rs.draining:
            return None
        if rs.rule.sources is not None and source not in rs.rule.sources:
            continue
        ir = gate_of(rs)
        key_paths = ir.key_paths
        if ir.starts is None or key_paths is None or len(key_paths) != 1:
            return None
        if not ir.starts or any(c.always for c in ir.starts):
            return None
        # An event failing every TAKE guard reachable from the start cannot start a partial
        # match (see NFA.start_take_conds): stepping a key without state with it leaves no
        # state.  A guard that reads the partial match translates to "unknown" there.
        starts = [condition_predicate(c, slot_of) for c in ir.start_codes]
        pre = _or(starts)
        if pre[0] == "const" and pre != FALSE:
            return None  # (nearly) every event could start a match
        held: Pred = ("held", slot_of(key_paths[0]), len(owners))
        if ir.held is Held.WAKE:
            # The key lookup last: most events fail the guards before it.  A guard that is
            # also a start guard is left out: the gate is `pre or (wake and held)`, and when
            # `pre` is not true neither is that guard (absorption holds in Kleene's logic).
            wake = [p for p in (condition_predicate(c, slot_of) for c in ir.wake_codes)
                    if p not in starts]
            held = _and([_or(wake), held])
        gate = _or([pre, held])
        if ir.header_fn is not None:
            gate = _and([condition_predicate(ir.header, slot_of), gate])
        owners.append(rs)
        gates.append(gate)
    paths = tuple(sorted(slots, key=slots.__getitem__))
    return paths, owners, gates


def _equality(pred: Pred) -> bool:
    """Whether ``pred`` is ``("cmp", code, slot, literal)`` of an equality (``==``)."""
    spec = OPERATORS.scanned(pred[1]) if pred[0] == "cmp" else None
    return spec is not None and spec.equality


def _membership(pred: Pred) -> Operator | None:
    """The operator of ``pred`` when it tests membership in a list of strings
    (:attr:`Scan.LIST`: ``in``, ``not in``), else ``None``."""
    spec = OPERATORS.scanned(pred[0])
    return spec if spec is not None and spec.scan is Scan.LIST else None


def _lits(pred: Pred, slot: int) -> frozenset[bytes] | None:
    """The plain-string values of ``slot`` for which ``pred`` can be other than false
    (``None``: any value)."""
    op = pred[0]
    if _equality(pred) and pred[2] == slot and type(pred[3]) is bytes:
        return frozenset((pred[3],))
    member = _membership(pred)
    if member is not None and not member.negated and pred[1] == slot:
        return frozenset(pred[2])
    if pred == FALSE:
        return frozenset()
    if op == "and":
        out: frozenset[bytes] | None = None
        for p in pred[1]:
            lits = _lits(p, slot)
            if lits is not None:
                out = lits if out is None else out & lits
        return out
    if op == "or":
        acc: set[bytes] = set()
        for p in pred[1]:
            lits = _lits(p, slot)
            if lits is None:
                return None
            acc |= lits
        return frozenset(acc)
    return None


def _slots_compared(pred: Pred, out: set[int]) -> set[int]:
    member = _membership(pred)
    if _equality(pred) and type(pred[3]) is bytes:
        out.add(pred[2])
    elif member is not None and not member.negated:
        out.add(pred[1])
    elif pred[0] in ("and", "or"):
        for p in pred[1]:
            _slots_compared(p, out)
    return out


def specialise(pred: Pred, slot: int, value: bytes) -> Pred:
    """``pred`` for lines whose ``slot`` holds the plain string ``value`` (ASCII, no
    escapes): every test of that slot replaced by its result, then simplified.  Exact in
    the scanner's three-valued logic; key lookups (``held``) are kept."""
    op = pred[0]
    if op in ("and", "or"):
        items = [specialise(p, slot, value) for p in pred[1]]
        return _and(items) if op == "and" else _or(items)
    if op == "not":
        inner = specialise(pred[1], slot, value)
        if inner[0] == "const":
            return inner if inner == UNKNOWN else (FALSE if inner == TRUE else TRUE)
        return ("not", inner)
    if op == "cmp" and pred[2] == slot:
        cmp, lit = OPERATORS.scanned(pred[1]), pred[3]
        assert cmp is not None and cmp.test is not None
        if type(lit) is not bytes:  # a bool or a number: never equal to a string
            return TRUE if cmp.mismatch else FALSE
        return TRUE if cmp.test(value, lit) else FALSE
    if op in ("truth", "isnull") and pred[1] == slot:
        return FALSE
    if op == "notnull" and pred[1] == slot:
        return TRUE
    member = _membership(pred)
    if member is not None and pred[1] == slot:
        return TRUE if (value in pred[2]) != member.negated else FALSE
    return pred


Index = tuple[int, tuple[tuple[bytes, tuple[tuple[int, Pred], ...]], ...], tuple[int, ...]]


def index_of(gates: Sequence[Pred], min_indexed: int = 4) -> Index | None:
    """An index for the scanner: the slot that constrains most gates to a few string
    values; for each such value the gates that can hold, each with its predicate
    specialised to the value (:func:`specialise`); and the gates that can hold for any other
    string.  ``None`` when fewer than ``min_indexed`` gates would be constrained (then
    testing them all is as cheap)."""
    count: dict[int, int] = {}
    for g in gates:
        for slot in _slots_compared(g, set()):
            if _lits(g, slot) is not None:
                count[slot] = count.get(slot, 0) + 1
    if not count:
        return None
    slot = max(count, key=lambda k: (count[k], -k))
    if count[slot] < min_indexed:
        return None
    values: set[bytes] = set()
    anywhere: list[int] = []
    for i, g in enumerate(gates):
        lits = _lits(g, slot)
        if lits is None:
            anywhere.append(i)
        else:
            values |= lits
    entries = []
    for v in sorted(values):
        pairs = tuple((i, p) for i, p in ((i, specialise(g, slot, v)) for i, g in
                                          enumerate(gates)) if p != FALSE)
        entries.append((v, pairs))
    return slot, tuple(entries), tuple(anywhere)


def build_program(rules: Sequence[RuleState], source: str, time_field: str
                  ) -> tuple[Any, list[RuleState]] | None:
    """A :class:`cep._prescan.Program` for ``rules`` (see :func:`gates_of`) and the rule
    of each of its gates, or ``None`` when the extension is missing or cannot help."""
    if native is None:
        return None
    found = gates_of(rules, source, time_field)
    if found is None:
        return None
    paths, owners, gates = found
    if UNKNOWN in gates or TRUE in gates:
        return None
    return native.Program(paths, 0, tuple(owners), tuple(gates), index_of(gates),
                          holders_of(paths, owners)), owners


def holders_of(paths: Sequence[tuple[str, ...]], owners: Sequence[RuleState]
               ) -> tuple[set[Any] | None, ...]:
    """Per slot, the set of held keys every rule keyed by that slot's field shares
    (:attr:`~cep.operator.cep_operator.RuleState.holders`), or ``None`` when they share
    none (then the scanner looks each rule's keys up)."""
    slot_of = {p: i for i, p in enumerate(paths)}
    missing = object()
    shared: dict[int, Any] = {}
    for rs in owners:
        slot = slot_of[rs.rule.key_paths[0]]  # type: ignore[index]  # (owners: one path)
        got = shared.get(slot, missing)
        if got is missing:
            shared[slot] = rs.holders
        elif got is not rs.holders:
            shared[slot] = None
    return tuple(shared.get(i) for i in range(len(paths)))


def horizon_of(owners: Sequence[RuleState]) -> int:
    """A lower bound (ms) on how far past an event's time a timer created while that event is
    matched can be due: the smallest pattern window of ``owners`` (a deadline is a partial
    match's start + window, see :func:`~cep.nfa.matcher.next_deadline`); 0 when a stage has a
    window of its own (measured from a partial match's last event, which may be older);
    ``_INT64_MAX`` when no rule has a window."""
    h = _INT64_MAX
    for rs in owners:
        nfa = rs.rule.nfa
        if any(st.window_ms for st in nfa.states):
            return 0
        if nfa.window_ms > 0:
            h = min(h, nfa.window_ms)
    return h


def keyed_alike(owners: Sequence[RuleState]) -> tuple[bool, ...]:
    """Per owner, whether its events can go straight to
    :meth:`~cep.operator.cep_operator.CepOperator.dispatch_key` with a key made once per
    line: it has no header ``where`` (its source is the scan's: see :func:`gates_of`) and is
    keyed by the field most owners are keyed by (a rule's key function is fully given by its
    field paths)."""
    paths = [rs.rule.key_paths for rs in owners]
    if not paths:
        return ()
    common = max(paths, key=paths.count)  # (the first of the most common)
    return tuple(rs.rule.header_filter is None and p == common
                 for rs, p in zip(owners, paths, strict=True))


_UNSET: Any = object()


def _no_odd_time(data: dict[str, Any], line: int) -> int | None:
    raise AssertionError("only objects with an int event time are handed to the loop")


BATCH_CAP = 512
"""Most wanted lines one call of :func:`cep._prescan.batch` lists."""


@dataclass(frozen=True)
class MessageLines:
    """A chunk whose lines are the values of Kafka messages of one partition (Kafka mode):
    line ``i`` (1-based) is the message at offset ``offsets[i - 1]`` of ``partition``.
    ``odd_time(obj, offset)`` is the event time of an object whose time is not an int of ms
    in the valid domain, or ``None`` after its message went to the dead letters
    (:meth:`CepOperator.on_batch <cep.operator.cep_operator.CepOperator.on_batch>`)."""

    offsets: list[int]
    partition: int
    odd_time: Callable[[dict[str, Any], int], int | None]


class Prescan:
    """Runs :func:`cep._prescan.batch` over chunks for one operator and input.

    ``source`` names the events' source (what rules read ``from``); ``input_name`` is the
    operator's watermark input (default ``source``; a Kafka topic-partition).
    ``handle(raw, line, seq)`` decodes and handles one line in Python (a dead letter, a blank
    line or an event) and returns the last arrival number used; the operator's state is what
    it leaves.
    """

    def __init__(self, op: CepOperator, source: str, time_field: str, max_bytes: int,
                 input_name: str | None = None) -> None:
        self.op = op
        self.source = source
        self.input = source if input_name is None else input_name
        self.time_field = time_field
        self.max_bytes = max_bytes
        self._cached: tuple[list[RuleState], tuple[bool, ...], Any, list[RuleState], int,
                            tuple[bool, ...], Any] | None = None

    def program(self) -> Any | None:
        """The program for the operator's current rules, or ``None`` when the scanner cannot
        be used right now (then the caller takes its usual path)."""
        op = self.op
        if op.buffered or not op.watermarks.is_sole_in_order(self.input) or not op.paced:
            return None
        if op.rule_index().indexed:
            return None  # the indexed rules are decided by their index, in Python
        rules = op.rules
        flags = tuple(rs.draining for rs in rules)
        cached = self._cached
        if (cached is None or cached[0] is not rules or cached[1] != flags
                or cached[6] is not op.holder_groups):
            op.share_holders()  # (the program keeps the sets it is given)
            program, owners = build_program(rules, self.source, self.time_field) or (None, [])
            if program is None:
                op.unshare_holders()
            cached = (rules, flags, program, [rs for rs in owners for _ in (0, 1)],
                      horizon_of(owners),
                      tuple(k for k in keyed_alike(owners) for _ in (0, 1)), op.holder_groups)
            self._cached = cached
        return cached[2]

    def run(self, program: Any, chunk: bytes, seq: int, line: int,
            handle: Callable[[bytes, int, int], int], messages: MessageLines | None = None
            ) -> tuple[int, int]:
        """Handle every line of ``chunk`` (lines joined by ``\\n``, the first being line
        ``line + 1``; ``seq`` the last arrival number used).  Returns the last ``(seq,
        line)``.  With ``messages`` the lines are Kafka messages (``line`` is then 0): an
        event's offset and partition are its message's.

        Lines the scanner passes over are counted as events.  The in-order lines some rules
        want come back in batches, each with the rules that want it, and each becomes an
        event dispatched to exactly those rules, in order (:meth:`CepOperator.dispatch_one`
        decides for each as the generated loop would; a rule whose gate is false would do
        nothing).  A batch ends before any line the timers could concern: one past the
        earliest timer, or past the earliest a timer the batch creates could be due
        (:func:`horizon_of`); the timers up to that line's time are fired (as the generated
        loop does) and it is looked at again.  Any other line that decodes to an object with
        an int event time goes through the generated loop as one object (late events, rule
        sets the scanner could not decide for), and the rest to ``handle``.
        """
        op = self.op
        scan = native.batch  # type: ignore[union-attr]
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        source, name = self.source, self.input
        offs, pid = (None, -1) if messages is None else (messages.offsets, messages.partition)
        tf = self.time_field
        max_bytes = self.max_bytes
        rules = op.rules
        assert self._cached is not None and self._cached[2] is program
        # (the scanner lists gate g as 2g + 1 when it is certainly true, 2g when unknown: these
        # hold each rule, and whether it is keyed alike, twice)
        owners, horizon, keyed = self._cached[3], self._cached[4], self._cached[5]
        key_fn = owners[keyed.index(True)].rule.key_fn if True in keyed else None
        dispatch_one = op.dispatch_one
        dispatch_key = op.dispatch_key
        unset: Any = _UNSET
        observe = op.watermarks.observe
        n = len(chunk)
        pos = 0
        op.refresh_due()  # exact once per chunk; kept a lower bound by the operator
        limit = op.guard.limit
        while True:
            last = op.largest_ts
            due = op.next_due
            if due <= last:  # timers fired under the last line: the next deadline
                due = op.refresh_due()
            # (a line past the future-skew guard's limit stops the scan like a timer would,
            # and is then handled the usual way, where the operator decides on it)
            lim = limit(last)
            stop = due if due < lim else lim
            pos, batch, skipped, new_last, ts, gates = scan(
                program, chunk, pos,
                _INT64_MIN if last == -math.inf else int(last),
                _INT64_MIN if stop == -math.inf else math.floor(stop),
                max_bytes, horizon, BATCH_CAP,
            )
            if gates is not None:  # a wanted line that could not join: the batch's last
                nl = chunk.find(b"\n", pos)
                end = n if nl < 0 else nl
                batch.append((skipped, pos, end, ts, gates, new_last))
                pos, skipped = end + 1, 0
            for before, start, end, bts, bgates, blast in batch:
                seq += before
                line += before
                op.events_in += before
                raw = chunk[start:end]
                try:
                    d = loads(raw)  # the scanner checked: an object with this int time
                except decode_error:
                    d = None
                if type(d) is dict and d.get(tf) == bts:
                    seq += 1
                    line += 1
                    op.events_in += 1
                    op.largest_ts = bts
                    ev = Event(bts, seq, d, source, line if offs is None else offs[line - 1],
                               pid)
                    key = unset  # the key of the rules in `keyed`, made once
                    for g in bgates:
                        if keyed[g]:
                            if key is unset:
                                key = key_fn(d)  # type: ignore[misc]
                            # (certainly true: the rule's first stage would take the event
                            # if the key had no state — the scanner saw none for it)
                            dispatch_key(owners[g], ev, key, g & 1)
                        else:
                            dispatch_one(owners[g], ev)
                else:  # (orjson disagreeing with the scanner: the usual way, to be safe)
                    op.largest_ts = -math.inf if blast == _INT64_MIN else blast
                    seq, line = self._usual(raw, seq, line, handle, messages)
                if op.rules is not rules:
                    return self._rest(chunk, end + 1, seq, line, handle)
            if skipped:
                seq += skipped
                line += skipped
                op.events_in += skipped
                op.largest_ts = new_last
            # (the watermark learns the largest time before anything that reads it: a tick,
            # a line handled the usual way, the end of the chunk; matching does not)
            if pos > n:
                if op.largest_ts != -math.inf:
                    observe(name, op.largest_ts)  # type: ignore[arg-type]
                return seq, line
            if gates is not None:
                continue
            if ts is not None and ts <= limit(op.largest_ts):
                # an in-order event past the earliest timer, or past where a timer the batch
                # created could be due: fire the timers up to it, as the generated loop does
                # before testing it, then look at it again
                op.largest_ts = ts
                wm = op.watermarks.current
                new_wm = observe(name, ts)
                if new_wm > wm:
                    op.advance(new_wm)
                if op.rules is not rules:
                    return self._rest(chunk, pos, seq, line, handle)
                continue
            # a late, malformed, unusual or undecidable line
            nl = chunk.find(b"\n", pos)
            end = n if nl < 0 else nl
            raw = chunk[pos:end]
            pos = end + 1
            seq, line = self._usual(raw, seq, line, handle, messages)
            if op.rules is not rules:
                return self._rest(chunk, pos, seq, line, handle)

    def _usual(self, raw: bytes, seq: int, line: int, handle: Callable[[bytes, int, int], int],
               messages: MessageLines | None = None) -> tuple[int, int]:
        """One line the usual way: an object with an int event time through the generated
        loop (late events, rule sets the scanner could not decide for), anything else to
        ``handle``.  Returns the last ``(seq, line)``."""
        op = self.op
        tf = self.time_field
        d = None
        if len(raw) <= self.max_bytes and nesting_within(raw):
            try:
                d = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
        if op.largest_ts != -math.inf:
            op.watermarks.observe(self.input, op.largest_ts)  # type: ignore[arg-type]
        if type(d) is not dict or type(d.get(tf)) is not int:
            line += 1
            return handle(raw.rstrip(b"\r"), line, seq), line
        seq0 = seq
        if messages is None:
            scan = op.scanner(self.source)  # built once per rule set, on first use
            seq, line, last, _ = scan((d,), op, op.rules, self.source, tf, seq, line,
                                      op.largest_ts, _no_odd_time, op.next_due)
        else:  # (an int time outside the valid domain: the message's dead letter)
            scan = op.scanner(self.source, True)
            off = messages.offsets[line]
            seq, _, last, _ = scan((d,), op, op.rules, self.source, tf, seq, off,
                                   op.largest_ts, messages.odd_time, op.next_due,
                                   messages.partition, (off,), self.input)
            line += 1
        op.events_in += seq - seq0
        op.largest_ts = last
        op.watermarks.observe(self.input, last)  # type: ignore[arg-type]
        return seq, line

    def _rest(self, chunk: bytes, pos: int, seq: int, line: int,
              handle: Callable[[bytes, int, int], int]) -> tuple[int, int]:
        """The rule set changed under the scan: the rest of the chunk line by line."""
        if self.op.largest_ts != -math.inf:
            self.op.watermarks.observe(self.input, self.op.largest_ts)  # type: ignore[arg-type]
        for raw in chunk[pos:].split(b"\n") if pos <= len(chunk) else ():
            line += 1
            seq = handle(raw.rstrip(b"\r"), line, seq)
        return seq, line
