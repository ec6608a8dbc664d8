"""The operator's in-order fast path: one generated loop over a batch of decoded objects.

When a run has a single input whose ``max_out_of_orderness`` is 0 and nothing is buffered,
every event is either late (its time is below the largest seen) or in order, and an in-order
event can be matched as soon as it arrives (see :meth:`CepOperator.on_event`).  For that case
this module writes, once per rule set, the source of one Python function that runs the whole
per-event path for a list of decoded JSON objects:

* the event time, with a call back to the caller for anything but an integer in ms;
* lateness, and the watermark passing a timer's deadline (then the operator's own
  :meth:`~CepOperator.advance` runs);
* an event time past the future-skew guard's limit or outside the valid domain (then the
  operator's ``admit_ahead`` decides, and a refused event is a dead letter, not an event);
* for each rule, its key and the test "does this key hold state, or can the event start a
  match?" (the first stage's condition, the prefilter) — both inlined from the generated code
  of :mod:`cep.compiler.codegen`, so an event that no rule wants costs no call and no object.

Only an event that some rule wants becomes an :class:`~cep.event.Event` and goes to the rule
state's :meth:`~cep.operator.key_store.RuleState.step`, exactly as :meth:`CepOperator.dispatch`
would send it.  Rules whose key or conditions have no inline form (they read ``ts`` or a
stage) get the same test through their compiled functions.  Identical key expressions are
computed once per event.

The generated code holds no rule text except what :func:`cep.compiler.codegen.inline_expr`
returns (``repr`` literals, generated names) and runs with empty builtins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cep.compiler import runtime as rt
from cep.compiler.codegen import inline_expr
from cep.compiler.generated import GeneratedCode
from cep.compiler.writer import CodeWriter
from cep.event import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, Event
from cep.operator.gate import Held, RuleGate, eq_literals, gate_of
from cep.operator.key_store import RuleState
from cep.operator.rule_index import RuleIndex

__all__ = ["Scanner", "build_scanner"]

# scan(objs, op, rules, src, tf, seq, off, last, odd, due=None, pid=-1, offs=None, inp=None,
#      accept=None, pids=None)
#     -> (seq, off, last, stopped)
Scanner = Callable[..., tuple[int, int, float, bool]]

# Fewer rules than this with a usable equality guard: no branching on the guarded field.
_MIN_INDEXED = 4


@dataclass
class _Gate:
    """One rule's :class:`~cep.operator.gate.RuleGate` rendered as inline Python.
    ``held``: its key has state (and, when known, the event can change it); ``pre``: the
    event can start a match; ``hf``: the header ``where``.  The ``*_lits`` are the values of
    the index field for which that part can hold (``None``: any value)."""

    i: int
    ir: RuleGate
    kvar: str | None = None  # None: a hand-made key, generic dispatch of the rule
    held: str = ""
    pre: str | None = None  # None: starts nothing (a draining version)
    hf: str | None = None
    pre_call: bool = False  # ``pre`` / ``hf`` call a compiled function with the Event
    hf_call: bool = False
    held_lits: frozenset[str] | None = None
    pre_lits: frozenset[str] | None = None
    wake: bool = False  # ``held`` tests the wake guards, and only they (Held.WAKE)

    def guarded_codes(self) -> list[GeneratedCode | None]:
        """The codes whose equality guards can serve to index this gate."""
        ir = self.ir
        codes = list(ir.start_codes) if self.pre not in (None, "True") else []
        if self.wake:
            codes += ir.wake_codes
        return codes + ([ir.header] if ir.header_fn is not None else [])


def _inline_any(codes: list[GeneratedCode | None], prefix: str, ns: dict[str, Any]
                ) -> list[str] | None:
    """The inline forms of ``codes`` (their constants bound in ``ns``), duplicates once;
    ``None`` when one has none."""
    parts: list[str] = []
    for j, code in enumerate(codes):
        frag = inline_expr(code, f"{prefix}{j}_")
        if frag is None:
            return None
        ns.update(frag[1])
        if frag[0] not in parts:
            parts.append(frag[0])
    return parts


@dataclass
class _KeyVar:
    """A key expression computed once per event: ``name = expr``."""

    name: str
    expr: str


def _gate(ir: RuleGate, i: int, ns: dict[str, Any], keys: dict[str, _KeyVar]) -> _Gate:
    """Rule ``i``'s gate as inline Python, its fragments bound in ``ns``; its key variable
    is the one in ``keys`` (by expression and constants), added there when new."""
    ns[f"_r{i}"] = ir.rule
    code = ir.key
    key = inline_expr(code, f"k{i}_")
    if key is None or code is None:
        return _Gate(i, ir)
    src, consts = key
    # the same key expression over the same constants: computed once per event
    sig = repr((code.data_expr, sorted((k, id(v)) for k, v in code.consts.items())))
    known = keys.get(sig)
    if known is None:
        ns.update(consts)
        known = keys[sig] = _KeyVar(f"_kv{len(keys)}", src)
    kvar = known.name
    g = _Gate(i, ir, kvar, held=f"{kvar} in _k{i}")
    if ir.starts is not None:
        parts = _inline_any(ir.start_codes, f"p{i}_", ns) if ir.start_fn is not None else None
        if ir.start_fn is None:
            g.pre = "True"
        elif parts:
            g.pre = " or ".join(f"({p})" for p in parts)
        else:
            ns[f"_pre{i}"] = ir.start_fn
            g.pre_call = True
            g.pre = f"_pre{i}(_ev, None)"
    wake = _inline_any(ir.wake_codes, f"w{i}_", ns) if ir.held is not Held.ANY else None
    if wake is not None:
        # A key with state needs only an event some guard of its automaton accepts, or
        # one at or past the key's next deadline.  When expiring says nothing (no
        # timeout output, no pending match, no skip strategy holding matches back), the
        # key's timer does the expiring at the next watermark, unobserved: no deadline
        # test.
        expr = "(" + " or ".join(f"({p})" for p in wake) + ")"
        if ir.held is Held.WAKE:
            g.held = f"({kvar} in _k{i} and {expr})"
            g.wake = True
        elif ir.rule.always_full:  # (each entry a KeyState, with its deadline)
            g.held = f"({kvar} in _k{i} and ({expr} or _k{i}[{kvar}].deadline <= _ts))"
    if ir.header_fn is not None:
        frag = inline_expr(ir.header, f"h{i}_")
        if frag is None:
            ns[f"_hf{i}"] = ir.header_fn
            g.hf_call = True
            g.hf = f"_hf{i}(_ev)"
        else:
            ns.update(frag[1])
            g.hf = f"({frag[0]})"
    return g


def _index(gates: list[_Gate]) -> str | None:
    """Pick the field most rules' guards test for equality and fill each gate's literal
    sets for it; ``None`` when too few rules would profit."""
    count: dict[str, int] = {}
    for g in gates:
        guards = {c.eq_guard[0] for c in g.guarded_codes()
                  if c is not None and c.eq_guard is not None}
        for fld in guards:
            count[fld] = count.get(fld, 0) + 1
    if not count:
        return None
    fld = max(count, key=lambda f: count[f])
    if count[fld] < _MIN_INDEXED:
        return None
    for g in gates:
        if g.kvar is None:
            continue
        ir = g.ir
        if g.pre is not None and g.pre != "True":
            g.pre_lits = eq_literals(ir.start_codes, fld)
        if g.wake:
            g.held_lits = eq_literals(ir.wake_codes, fld)
        hf = ir.header.eq_guard if ir.header is not None else None
        if ir.header_fn is not None and hf is not None and hf[0] == fld:
            # the header `where` gates the whole rule, held keys included
            only = frozenset((hf[1],))
            g.held_lits = only if g.held_lits is None else g.held_lits & only
            g.pre_lits = only if g.pre_lits is None else g.pre_lits & only
    return fld


_MAKE_EVENT = "_ev = _Ev(_ts, _seq, _d, _src, _off, _pid)"


def _emit(g: _Gate, value: str | None, indexed: bool, w: CodeWriter, single: bool) -> None:
    """The statements of gate ``g`` in the branch where the index field equals ``value``
    (``None``: none of the literals, or no index).  ``single``: ``g`` is the only gate, so
    the event is never made before it (no ``_ev is None`` test)."""
    if g.kvar is None:
        with w.block("if _ev is None:"):
            w.line(_MAKE_EVENT)
        w.line(f"dispatch_one(_r{g.i}, _ev)")
        w.line("_due = _ctx.next_due")
        return
    parts = []
    needs_ev = g.hf_call
    if not indexed or g.held_lits is None or (value is not None and value in g.held_lits):
        parts.append(g.held)
    if g.pre is not None and (not indexed or g.pre_lits is None
                              or (value is not None and value in g.pre_lits)):
        parts.append(g.pre)
        needs_ev = needs_ev or g.pre_call
    if not parts:
        return
    want = " or ".join(parts)
    if g.hf is not None:
        want = f"{g.hf} and ({want})"
    if needs_ev:
        with w.block("if _ev is None:"):
            w.line(_MAKE_EVENT)
    with w.block(f"if {want}:"):
        if single:
            w.line(_MAKE_EVENT)
        elif not needs_ev:
            with w.block("if _ev is None:"):
                w.line(_MAKE_EVENT)
        w.line(f"_s{g.i}({g.kvar}, _ev)")
        w.line("_due = _ctx.next_due")


def build_scanner(rules: Sequence[RuleState], source: str, offsets: bool = False,
                  accepting: bool = False, index: RuleIndex | None = None,
                  partitions: bool = False) -> Scanner:
    """Generate the batch loop for ``rules`` (in dispatch order) reading input ``source``.

    With an ``index`` (:class:`~cep.operator.rule_index.RuleIndex` of ``rules``) only its
    ``always`` rules are tested inline; then each event goes to the indexed rules whose
    requirement it meets (``CepOperator.dispatch_one``), as :meth:`CepOperator.dispatch` does.

    The returned ``scan(objs, op, rules, src, tf, seq, off, last, odd, due=None, pid=-1,
    offs=None, inp=None, accept=None, pids=None)`` handles ``objs`` in order: ``tf`` is the
    event-time field, ``seq``/``off`` the last arrival number and line number used, ``last``
    the largest event time seen, ``odd(obj, line)`` the event time of an object whose time
    field is not an int (``None`` after routing it as a dead letter), ``due`` a lower bound
    of every rule's earliest timer (ms; ``None``: computed), ``pid`` the Kafka partition of
    the events (``-1``: a file), ``inp`` the watermark input (``None``: ``src``).  It returns
    the updated ``(seq, off, last, stopped)``; ``stopped`` means the rule list changed (a
    drained version retired) and the caller must rebuild before the next object.

    With ``offsets`` (Kafka messages) the loop reads each object's offset from ``offs`` (one
    per object, increasing) instead of counting lines, returns the last offset used as
    ``off``, and also hands an int event time outside the valid domain to ``odd``, as
    decoding one message does (:func:`cep.io.codecs.json_decoder`), so that it costs no
    arrival number.

    With ``partitions`` too (a shuffle task's merged stream) each object's Kafka partition
    comes from ``pids`` (one per object) instead of ``pid``; the offsets then need not
    increase.

    With ``accepting`` the loop calls ``accept(obj, event time, arrival number, offset)`` for
    each event it accepts (neither late nor refused), before matching it.

    With several rules whose guards test one field for equality with string literals (``type
    == "login"``), the loop branches on that field's value once per event and each branch
    holds only the rules that can care about that value.
    """
    ns: dict[str, Any] = {"__builtins__": {}}
    ns.update(rt.HELPERS)
    ns.update({"_int": int, "_Ev": Event, "_inf": float("inf"), "_max": MAX_EVENT_TIME_MS,
               "_min": MIN_EVENT_TIME_MS, "_zip": zip})
    keys: dict[str, _KeyVar] = {}
    gates: list[_Gate] = []
    indexed = index is not None and index.indexed > 0
    inline = {id(rs) for rs in index.always} if index is not None and indexed else None
    for i, rs in enumerate(rules):
        if rs.rule.sources is not None and source not in rs.rule.sources:
            continue
        if inline is not None and id(rs) not in inline:
            continue
        gates.append(_gate(gate_of(rs), i, ns, keys))
    # Only a draining version can disappear in the middle of a batch (when its last key
    # goes); then the rule list is rebound and the loop must stop after the current event.
    watch = any(rs.draining for rs in rules)
    fld = _index(gates) if len(gates) >= _MIN_INDEXED else None
    single = (len(gates) == 1 and gates[0].kvar is not None and not gates[0].pre_call
              and not gates[0].hf_call and not indexed)
    w = CodeWriter()
    with w.block("def _scan(_objs, _op, _rules, _src, _tf, _seq, _off, _last, _odd, "
                 "_due=None, _pid=-1, _offs=None, _inp=None, _accept=None, _pids=None):"):
        for g in gates:
            w.line(f"_k{g.i} = _r{g.i}.keys")
            w.line(f"_s{g.i} = _r{g.i}.step")
        w.line("_ctx = _op.context")
        w.line("dispatch_one = _op.dispatch_one")
        w.line("_tick = _op.tick_in_order")
        w.line("_late = _op.late_in_order")
        w.line("_admit = _op.admit_ahead")
        w.line("_guard = _op.guard")
        w.line("_skew = _guard.skew")
        # (the guard's cap, the wall clock's limit in live modes, moves only when it decides)
        w.line("_cap = _guard.cap")
        w.line("_lim = _guard.limit(_last)")
        with w.block("if _due is None:"):
            w.line("_due = _op.refresh_due()")
        with w.block("if _inp is None:"):
            w.line("_inp = _src")
        if partitions:
            head = "for _d, _off, _pid in _zip(_objs, _offs, _pids):"
        else:
            head = "for _d, _off in _zip(_objs, _offs):" if offsets else "for _d in _objs:"
        with w.block(head):
            _event_time(w, watch, offsets or partitions, accepting)
            for kv in keys.values():
                w.line(f"{kv.name} = {kv.expr}")
            if not single:
                w.line("_ev = None")
            if fld is None:
                for g in gates:
                    _emit(g, None, False, w, single)
            else:
                _indexed(w, gates, fld, ns)
            if indexed:
                assert index is not None
                ns["_cands"] = index.candidates
                with w.block("for _r in _cands(_d):"):
                    with w.block("if _ev is None:"):
                        w.line(_MAKE_EVENT)
                    w.line("dispatch_one(_r, _ev)")
                    w.line("_due = _ctx.next_due")
            if watch:
                with w.block("if _op.rules is not _rules:"):
                    w.line("return _seq, _off, _last, True")
        w.line("return _seq, _off, _last, False")
    code = compile(w.source(), "<cep:scan>", "exec")
    exec(code, ns)
    fn: Scanner = ns["_scan"]
    return fn


def _admit_or_skip(w: CodeWriter) -> None:
    """An event time the guard must decide (outside the valid domain, or past its limit):
    the operator's ``admit_ahead`` decides, the guard's cap and limit are read again (the
    decision may move them), and a refused event is skipped."""
    w.line("_ok = _admit(_ts, _d, _src, _off, _last, _pid)")
    w.line("_cap = _guard.cap")
    w.line("_lim = _guard.limit(_last)")
    with w.block("if not _ok:"):
        w.line("continue")


def _event_time(w: CodeWriter, watch: bool, offsets: bool, accepting: bool) -> None:
    """The loop's per-object head: the event time (the caller's ``_odd`` for anything but an
    int, and with ``offsets`` for an int outside the valid domain too), arrival number,
    lateness, the future-skew guard, and the timers a new largest time passes (then, with
    ``watch``, a stop when the rule list changed under them); with ``accepting``, the
    caller told of each event accepted."""
    if offsets:
        w.line("_ts = _d.get(_tf)")
        test = "if _type(_ts) is not _int or not _min <= _ts <= _max:"
    else:
        w.line("_off += 1")
        w.line("_ts = _d.get(_tf)")
        test = "if _type(_ts) is not _int:"
    with w.block(test):
        w.line("_ts = _odd(_d, _off)")
        with w.block("if _ts is None:"):
            w.line("continue")
    w.line("_seq += 1")
    with w.block("if _ts != _last:"):
        with w.block("if _ts < _last:"):
            with w.block("if _ts < _min:"):
                _admit_or_skip(w)
            w.line("_late(_Ev(_ts, _seq, _d, _src, _off, _pid), _last, _inp)")
            w.line("continue")
        with w.block("if _ts > _lim:"):
            _admit_or_skip(w)
        w.line("_last = _ts")
        w.line("_lim = _ts + _skew")
        with w.block("if _lim > _cap:"):
            w.line("_lim = _cap")
        with w.block("if _ts > _due:"):
            w.line("_due = _tick(_ts, _inp)")
            if watch:
                with w.block("if _op.rules is not _rules:"):
                    if accepting:
                        w.line("_accept(_d, _ts, _seq, _off)")
                    w.line("_op.dispatch(_Ev(_ts, _seq, _d, _src, _off, _pid))")
                    w.line("return _seq, _off, _last, True")
    if accepting:
        w.line("_accept(_d, _ts, _seq, _off)")


def _indexed(w: CodeWriter, gates: list[_Gate], fld: str, ns: dict[str, Any]) -> None:
    """The gates in one branch per value of the index field ``fld`` their literals name, and
    a last branch for any other value."""
    values = sorted({v for g in gates for lits in (g.held_lits, g.pre_lits)
                     if lits is not None for v in lits})
    ns["_fld"] = fld
    w.line("_g = _d.get(_fld)")
    for n, v in enumerate(values):
        with w.block(f"{'if' if n == 0 else 'elif'} _g == {v!r}:"):
            for g in gates:
                _emit(g, v, True, w, False)
    with w.block("else:"):
        for g in gates:
            _emit(g, None, True, w, False)
