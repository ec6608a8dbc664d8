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

Only an event that some rule wants becomes an :class:`~cep.event.Event` and goes to
``CepOperator.step_key``, exactly as :meth:`CepOperator.dispatch` would send it.  Rules whose
key or conditions have no inline form (they read ``ts`` or a stage) get the same test through
their compiled functions.  Identical key expressions are computed once per event.

The generated code holds no rule text except what :func:`cep.compiler.codegen.inline_expr`
returns (``repr`` literals, generated names) and runs with empty builtins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cep.compiler import runtime as rt
from cep.compiler.codegen import inline_expr
from cep.compiler.generated import GeneratedCode, code_of
from cep.event import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, Event
from cep.nfa.model import FINAL, IGNORE, NFA, PROCEED, STOP, TAKE, EdgeCond
from cep.operator.rule_index import RuleIndex
from cep.operator.rule_state import RuleState, silent_expiry

__all__ = ["Scanner", "build_scanner"]

# scan(objs, op, rules, src, tf, seq, off, last, odd, due=None) -> (seq, off, last, stopped)
Scanner = Callable[..., tuple[int, int, float, bool]]

# Fewer rules than this with a usable equality guard: no branching on the guarded field.
_MIN_INDEXED = 4


@dataclass
class _Gate:
    """One rule's test.  ``held``: its key has state (and, when known, the event can change
    it); ``pre``: the event can start a match; ``hf``: the header ``where``.  The ``*_lits``
    are the values of the index field for which that part can hold (``None``: any value)."""

    i: int
    kvar: str | None = None  # None: a hand-made key, generic dispatch of the rule
    held: str = ""
    pre: str | None = None  # None: starts nothing (a draining version)
    hf: str | None = None
    pre_call: bool = False  # ``pre`` / ``hf`` call a compiled function with the Event
    hf_call: bool = False
    held_lits: frozenset[str] | None = None
    pre_lits: frozenset[str] | None = None
    guards: list[tuple[str, str] | None] = field(default_factory=list)
    hf_guard: tuple[str, str] | None = None
    wake: list[GeneratedCode | None] | None = None  # the wake test's guards (held keys)


def _guard_of(code: GeneratedCode | None) -> tuple[str, str] | None:
    return code.eq_guard if code is not None else None


def _eq_lits(codes: list[GeneratedCode | None], fld: str) -> frozenset[str] | None:
    """The values ``fld`` must have for one of ``codes`` to hold, when each of them carries
    an equality guard on ``fld`` (:attr:`GeneratedCode.eq_guard`)."""
    out = set()
    for code in codes:
        g = _guard_of(code)
        if g is None or g[0] != fld:
            return None
        out.add(g[1])
    return frozenset(out)


def _gate(rs: RuleState, i: int, ns: dict[str, Any], keys: dict[str, str],
          lines: list[str]) -> _Gate:
    """Rule ``i``'s test, its fragments bound in ``ns``, its key computed in ``lines``."""
    rule = rs.rule
    ns[f"_r{i}"] = rs
    code = rule.key_code
    key = inline_expr(code, f"k{i}_")
    if key is None or code is None:
        return _Gate(i)
    src, consts = key
    # the same key expression over the same constants: computed once per event
    sig = repr((code.data_expr, sorted((k, id(v)) for k, v in code.consts.items())))
    kvar = keys.get(sig)
    if kvar is None:
        ns.update(consts)
        kvar = f"_kv{len(keys)}"
        keys[sig] = kvar
        lines.append(f"        {kvar} = {src}")
    g = _Gate(i, kvar, held=f"{kvar} in _k{i}")
    nfa = rule.nfa
    if not rs.draining:
        pre = nfa.start_prefilter
        if pre is None:
            g.pre = "True"
        else:
            codes = [code_of(c) for c in nfa.start_take_conds]
            parts: list[str] = []
            for j, start in enumerate(codes):
                frag = inline_expr(start, f"p{i}_{j}_")
                if frag is None:
                    parts = []
                    break
                parts.append(frag[0])
                ns.update(frag[1])
            if parts:
                g.pre = " or ".join(f"({p})" for p in parts)
            else:
                ns[f"_pre{i}"] = pre.fn
                g.pre_call = True
                g.pre = f"_pre{i}(_ev, None)"
            g.guards += [_guard_of(c) for c in codes]
        wake = _wake(nfa, i, ns)
        if wake is not None:
            # A key with state needs only an event some guard of its automaton accepts, or
            # one at or past the key's next deadline.  When expiring says nothing (no
            # timeout output, no pending match, no skip strategy holding matches back), the
            # key's timer does the expiring at the next watermark, unobserved: no deadline
            # test.
            expr, takes = wake
            if silent_expiry(rs):
                g.held = f"({kvar} in _k{i} and {expr})"
                g.wake = [code_of(c) for c in takes]
                g.guards += [_guard_of(c) for c in g.wake]
            else:
                g.held = (f"({kvar} in _k{i} and ({expr} or "
                          f"_k{i}[{kvar}].deadline <= _ts))")
    hf = rule.header_filter
    if hf is not None:
        g.hf_guard = _guard_of(rule.header_code)
        if g.hf_guard is not None:
            g.guards.append(g.hf_guard)
        frag = inline_expr(rule.header_code, f"h{i}_")
        if frag is None:
            ns[f"_hf{i}"] = hf
            g.hf_call = True
            g.hf = f"_hf{i}(_ev)"
        else:
            ns.update(frag[1])
            g.hf = f"({frag[0]})"
    return g


def _index(gates: list[_Gate], rules: Sequence[RuleState], ns: dict[str, Any]) -> str | None:
    """Pick the field most rules' guards test for equality and fill each gate's literal
    sets for it; ``None`` when too few rules would profit."""
    count: dict[str, int] = {}
    for g in gates:
        for fld in {x[0] for x in g.guards if x is not None}:
            count[fld] = count.get(fld, 0) + 1
    if not count:
        return None
    fld = max(count, key=lambda f: count[f])
    if count[fld] < _MIN_INDEXED:
        return None
    for g in gates:
        if g.kvar is None:
            continue
        rule = rules[g.i].rule
        if g.pre is not None and g.pre != "True":
            g.pre_lits = _eq_lits([code_of(c) for c in rule.nfa.start_take_conds], fld)
        if g.wake is not None:
            g.held_lits = _eq_lits(g.wake, fld)
        if g.hf_guard is not None and g.hf_guard[0] == fld:
            # the header `where` gates the whole rule, held keys included
            only = frozenset((g.hf_guard[1],))
            g.held_lits = only if g.held_lits is None else g.held_lits & only
            g.pre_lits = only if g.pre_lits is None else g.pre_lits & only
    return fld


def _emit(g: _Gate, value: str | None, indexed: bool, out: list[str], ind: str) -> None:
    """The lines of gate ``g`` in the branch where the index field equals ``value`` (``None``:
    none of the literals, or no index)."""
    if g.kvar is None:
        out += [f"{ind}if _ev is None:",
                f"{ind}    _ev = _Ev(_ts, _seq, _d, _src, _off)",
                f"{ind}dispatch_one(_r{g.i}, _ev)",
                f"{ind}_due = _op.next_due"]
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
        out += [f"{ind}if _ev is None:",
                f"{ind}    _ev = _Ev(_ts, _seq, _d, _src, _off)"]
    out += [f"{ind}if {want}:"]
    if not needs_ev:
        out += [f"{ind}    if _ev is None:",
                f"{ind}        _ev = _Ev(_ts, _seq, _d, _src, _off)"]
    out += [f"{ind}    _step(_r{g.i}, {g.kvar}, _ev)",
            f"{ind}    _due = _op.next_due"]


def wake_takes(nfa: NFA) -> list[EdgeCond] | None:
    """The TAKE guards of an automaton whose partial matches only move when one of them
    holds, or ``None`` when it is not such an automaton.

    That is so when every state a partial match can wait in has no PROCEED edge and exactly
    one IGNORE edge, back to itself, guarded by ``not g`` for one of its own TAKE guards
    ``g`` (relaxed contiguity, ``followed by``), and no TAKE guard is constant or reads the
    partial match: an event failing every TAKE guard of the automaton then takes nothing,
    starts nothing and is ignored by every partial match, so
    :func:`cep.nfa.matcher.process` would change nothing.
    """
    waiting = {t.target for s in nfa.states for t in s.transitions
               if t.action in (TAKE, IGNORE) and t.target.kind not in (FINAL, STOP)}
    takes: dict[Any, EdgeCond] = {}  # by function: the first guard of each
    for s in nfa.states:
        own = [t for t in s.transitions if t.action == TAKE]
        for t in own:
            if t.cond.always or t.cond.iterative:
                return None
            takes.setdefault(t.cond.fn, t.cond)
        if s not in waiting:
            continue
        ignores = [t for t in s.transitions if t.action == IGNORE]
        if any(t.action == PROCEED for t in s.transitions) or len(ignores) != 1:
            return None
        ign = ignores[0]
        if ign.target is not s or ign.cond.always:
            return None
        negated = ign.cond.negates
        if negated is None or negated.fn not in [t.cond.fn for t in own]:
            return None
    return list(takes.values()) or None


def _wake(nfa: NFA, i: int, ns: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """An inline test that is false only for events that leave every partial match of this
    automaton where it is (see :func:`wake_takes`), and the TAKE guards it tests; ``None``
    when there is no such test or a guard has no inline form."""
    takes = wake_takes(nfa)
    if takes is None:
        return None
    parts: list[str] = []
    for j, take in enumerate(takes):
        frag = inline_expr(code_of(take), f"w{i}_{j}_")
        if frag is None:
            return None
        ns.update(frag[1])
        if frag[0] not in parts:
            parts.append(frag[0])
    return "(" + " or ".join(f"({p})" for p in parts) + ")", takes


def build_scanner(rules: Sequence[RuleState], source: str,
                  index: RuleIndex | None = None) -> Scanner:
    """Generate the batch loop for ``rules`` (in dispatch order) reading input ``source``.

    With an ``index`` (:class:`~cep.operator.rule_index.RuleIndex` of ``rules``) only its
    ``always`` rules are tested inline; then each event goes to the indexed rules whose
    requirement it meets (``CepOperator.dispatch_one``), as :meth:`CepOperator.dispatch` does.

    The returned ``scan(objs, op, rules, src, tf, seq, off, last, odd, due=None)`` handles
    ``objs`` in order: ``tf`` is the event-time field, ``seq``/``off`` the last arrival number
    and line number used, ``last`` the largest event time seen, ``odd(obj, line)`` the event
    time of an object whose time field is not an int (``None`` after routing it as a dead
    letter), ``due`` a lower bound of every rule's earliest timer (ms; ``None``: computed).  It
    returns the updated ``(seq, off, last, stopped)``; ``stopped`` means the rule list changed
    (a drained version retired) and the caller must rebuild before the next object.

    With several rules whose guards test one field for equality with string literals (``type
    == "login"``), the loop branches on that field's value once per event and each branch
    holds only the rules that can care about that value.
    """
    ns: dict[str, Any] = {"__builtins__": {}}
    ns.update(rt.HELPERS)
    ns.update({"_int": int, "_Ev": Event, "_inf": float("inf"), "_max": MAX_EVENT_TIME_MS,
               "_min": MIN_EVENT_TIME_MS})
    keys: dict[str, str] = {}
    body: list[str] = []
    gates: list[_Gate] = []
    binds: list[str] = []
    indexed = index is not None and index.indexed > 0
    inline = {id(rs) for rs in index.always} if index is not None and indexed else None
    for i, rs in enumerate(rules):
        if rs.rule.sources is not None and source not in rs.rule.sources:
            continue
        if inline is not None and id(rs) not in inline:
            continue
        gates.append(_gate(rs, i, ns, keys, body))
        binds.append(f"    _k{i} = _r{i}.keys")
    # Only a draining version can disappear in the middle of a batch (when its last key
    # goes); then the rule list is rebound and the loop must stop after the current event.
    watch = any(rs.draining for rs in rules)
    fld = _index(gates, rules, ns) if len(gates) >= _MIN_INDEXED else None
    single = (len(gates) == 1 and gates[0].kvar is not None and not gates[0].pre_call
              and not gates[0].hf_call and not indexed)
    dispatch: list[str] = []
    if not single:
        dispatch.append("        _ev = None")
    if fld is None:
        for g in gates:
            _emit(g, None, False, dispatch, "        ")
    else:
        values = sorted({v for g in gates for lits in (g.held_lits, g.pre_lits)
                         if lits is not None for v in lits})
        ns["_fld"] = fld
        dispatch.append("        _g = _d.get(_fld)")
        for n, v in enumerate(values):
            dispatch.append(f"        {'if' if n == 0 else 'elif'} _g == {v!r}:")
            before = len(dispatch)
            for g in gates:
                _emit(g, v, True, dispatch, "            ")
            if len(dispatch) == before:
                dispatch.append("            pass")
        dispatch.append("        else:")
        before = len(dispatch)
        for g in gates:
            _emit(g, None, True, dispatch, "            ")
        if len(dispatch) == before:
            dispatch.append("            pass")
    if indexed:
        assert index is not None
        ns["_cands"] = index.candidates
        dispatch += ["        for _r in _cands(_d):",
                     "            if _ev is None:",
                     "                _ev = _Ev(_ts, _seq, _d, _src, _off)",
                     "            dispatch_one(_r, _ev)",
                     "            _due = _op.next_due"]
    if single:
        dispatch = [line.replace("if _ev is None:", "if True:") for line in dispatch]
    src = [
        "def _scan(_objs, _op, _rules, _src, _tf, _seq, _off, _last, _odd, _due=None):",
        *binds,
        "    _step = _op.step_key",
        "    dispatch_one = _op.dispatch_one",
        "    _tick = _op.tick_in_order",
        "    _late = _op.late_in_order",
        "    _admit = _op.admit_ahead",
        "    _skew = _op.guard.skew",
        "    _lim = _op.guard.limit(_last)",
        "    if _lim > _max:",
        "        _lim = _max",
        "    if _due is None:",
        "        _due = _op.refresh_due()",
        "    for _d in _objs:",
        "        _off += 1",
        "        _ts = _d.get(_tf)",
        "        if _type(_ts) is not _int:",
        "            _ts = _odd(_d, _off)",
        "            if _ts is None:",
        "                continue",
        "        _seq += 1",
        "        if _ts != _last:",
        "            if _ts < _last:",
        "                if _ts < _min and not _admit(_ts, _d, _src, _off, _last):",
        "                    continue",
        "                _late(_Ev(_ts, _seq, _d, _src, _off), _last)",
        "                continue",
        "            if _ts > _lim:",
        "                if not _admit(_ts, _d, _src, _off, _last):",
        "                    continue",
        "            _last = _ts",
        "            _lim = _ts + _skew",
        "            if _lim > _max:",
        "                _lim = _max",
        "            if _ts > _due:",
        "                _due = _tick(_ts)",
        *([
            "                if _op.rules is not _rules:",
            "                    _op.dispatch(_Ev(_ts, _seq, _d, _src, _off))",
            "                    return _seq, _off, _last, True",
        ] if watch else []),
        *body,
        *dispatch,
        *([
            "        if _op.rules is not _rules:",
            "            return _seq, _off, _last, True",
        ] if watch else []),
        "    return _seq, _off, _last, False",
    ]
    text = "\n".join(src) + "\n"
    code = compile(text, "<cep:scan>", "exec")
    exec(code, ns)
    fn: Scanner = ns["_scan"]
    return fn
