"""Versioned msgpack snapshots of a :class:`~cep.operator.cep_operator.CepOperator`.

A snapshot holds everything needed to continue a stream exactly where it stopped: per rule (by
name *and* rule version) each key's partial matches — NFA state by *name*, the event chain with
shared prefixes stored once, first/previous event times (ms), the ordering key ``ck`` — the
completed matches still held back by the skip strategy, the key's clock, the rule's timers and
counters; the events buffered but not yet released; the watermark tracker's per-input maxima;
and a ``meta`` map for the caller (input offsets, the next arrival number).

Framing (format version 2 and later): the 8 bytes ``CEPCKPT\\x02``, the SHA-256 of the payload (32
bytes), then the payload, one msgpack map.  A frame whose checksum does not match (a torn
copy, a flipped bit, an edit) is refused with :class:`CheckpointError`; the checksum detects
damage, it does not authenticate (whoever can write the checkpoint can compute it), so
callers still validate what they read (``meta``: see :mod:`cep.app.file_checkpoint`).  A
payload without a frame is read as format version 1, written before the checksum existed.

Payload::

    {"format": "cep.checkpoint", "version": 2, "meta": {...},
     "events_in": int, "late": int,
     "watermark": {"current": float, "finished": bool, "inputs": [[name, max_ms, idle], ...]},
     "events": [[ts, seq, data, source, offset, partition], ...],     # each event once
     "nodes":  [[stage, event_index, prev_node_index | -1], ...],     # parents before children
     "buffer": {"events": [event_index, ...], "last_ts": float},
     "rules":  [{"name", "version", "text", "counter", "draining", "matches", "timeouts",
                 "evictions", "keys": [[key, clock, partial, completed], ...],
                 "timers": [[deadline_ms, n, key], ...], "deadline": [[key, deadline_ms], ...],
                 "key_evictions": [[key, evicted since its last match], ...],
                 "alerting": {...}}]}                             # version 3, optional

``alerting`` (format version 3; only for rules with a ``having`` / ``all of`` window or
``suppress for``) is the rule's :class:`~cep.operator.alerting.Alerting`:
``{"produced": int, "windows": [[key, [event_index, ...], exact], ...] (keys in the order of
their last event), "window_evictions": int, "periods": [[group, until_ms, suppressed], ...]
(in emission order), "pending": [[group, suppressed], ...], "suppressed": int}``.  The
windows' running aggregates are computed again from their events.  Version 2 snapshots
(no ``alerting``) are read as before, with empty windows and no suppression in force; an engine
that knows only version 2 refuses version 3 rather than drop that state silently.

A computation (in ``partial`` / ``completed``, kept in heap array order so ties break exactly as
before) is ``[state_name, node_index | -1, start_ts, prev_ts, ck | None]`` (``None`` is the start
computation's +∞ key; ``start_ts`` and ``prev_ts`` are written for readers, restoring takes them
from ``ck`` and the node's event).  Keys that are tuples are msgpack extension type 1.  ``text``
is the rule's canonical text (optional: snapshots written before it existed lack it).  Timers
fire in ``(deadline_ms, n)`` order; ``deadline`` lists the keys' earliest timers.  An event that
a partial match holds compactly is written as the plain event it stands for.

Restoring applies the reload policy of :mod:`cep.operator.versions` to the running rules: a
rule whose saved version is the running one gets its state back; a saved version that differs
from the running one (or that was draining when saved) is compiled again from its ``text`` and
drains — it finishes its partial matches and starts no new ones; a rule that is no longer
running has its state dropped.

:func:`decode` refuses data that is not a snapshot or has a format version this code does not
know (a newer engine wrote it) with :class:`CheckpointError`; it never guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.errors import CepError
from cep.event import Event, HeldEvent
from cep.lang.check import check_rule
from cep.lang.parse import parse_text
from cep.nfa.heap import JavaHeap
from cep.nfa.matcher import NO_COMPLETED, START_CK, Computation, KeyState
from cep.nfa.model import NFA, State
from cep.nfa.pattern import PartialMatchNode
from cep.operator.alerting import Alerting
from cep.operator.cep_operator import CepOperator, RuleState
from cep.operator.watermark import WatermarkTracker

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "RestoreReport", "encode", "decode",
           "read_meta", "payload"]

FORMAT = "cep.checkpoint"
FORMAT_VERSION = 3
MAGIC = b"CEPCKPT\x02"
"""The first bytes of a framed snapshot (format version 2 and later)."""
_HEADER = len(MAGIC) + hashlib.sha256().digest_size
_TUPLE = 1  # msgpack extension code for tuples (composite keys)
_INF = float("inf")


class CheckpointError(CepError):
    """A checkpoint that cannot be read: not a snapshot, corrupt, or of an unknown version."""

    exit_code = 2


@dataclass
class RestoreReport:
    """What :func:`decode` restored.

    ``dropped_rules`` lists ``(name, saved_version, running_version | None)`` for saved rule
    state that was discarded (the rule is gone, or a changed version cannot drain: no saved
    text or no partial match a ``within`` bounds); ``draining_rules`` the same for saved
    versions restored to drain; ``keys`` and ``partial_matches`` count what was restored
    (draining versions included), ``partial_dropped`` what was discarded; ``meta`` is the
    caller's map from :func:`encode`.
    """

    meta: dict[str, Any] = field(default_factory=dict)
    restored_rules: list[str] = field(default_factory=list)
    dropped_rules: list[tuple[str, str, str | None]] = field(default_factory=list)
    draining_rules: list[tuple[str, str, str | None]] = field(default_factory=list)
    partial_dropped: int = 0
    keys: int = 0
    partial_matches: int = 0
    buffered: int = 0
    created_ms: int = 0


# --------------------------------------------------------------------------- msgpack


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        return tuple(_unpack(data))
    raise CheckpointError(f"unknown msgpack extension type {code} in checkpoint")


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook,
                           use_list=True)


# --------------------------------------------------------------------------- encode


class _Tables:
    """Events and chain nodes, each stored once (shared prefixes are shared in the file)."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []
        self.nodes: list[list[Any]] = []
        self._ev: dict[int, int] = {}
        self._node: dict[int, int] = {}
        # Every node stored, kept alive until the snapshot is written: the tables know
        # objects by ``id``, and the nodes of a key kept as its event alone are made for the
        # snapshot only (RuleState.key_states) — freed, their ids would be reused by others.
        self._alive: list[PartialMatchNode] = []

    def event(self, ev: Event | HeldEvent) -> int:
        i = self._ev.get(id(ev))
        if i is None:
            i = self._ev[id(ev)] = len(self.events)
            self.events.append([ev.ts, ev.seq, ev.data, ev.source, ev.offset, ev.partition])
        return i

    def node(self, node: PartialMatchNode | None) -> int:
        if node is None:
            return -1
        known = self._node.get(id(node))
        if known is not None:
            return known
        chain = []  # walk back to a stored node (or the start) without recursion
        cur: PartialMatchNode | None = node
        while cur is not None and id(cur) not in self._node:
            chain.append(cur)
            cur = cur.prev
        prev = -1 if cur is None else self._node[id(cur)]
        self._alive.extend(chain)
        for n in reversed(chain):
            idx = self._node[id(n)] = len(self.nodes)
            self.nodes.append([n.stage, self.event(n.event), prev])
            prev = idx
        return prev

    def computation(self, cs: Computation) -> list[Any]:
        ck = None if cs.ck is START_CK else list(cs.ck)
        return [cs.state.name, self.node(cs.node), cs.start_ts, cs.prev_ts, ck]


def _encode_rule(rs: RuleState, t: _Tables) -> dict[str, Any]:
    states = list(rs.key_states())
    keys = [
        [key, ks.clock, [t.computation(c) for c in ks.a],
         [t.computation(c) for c in ks.completed.a]]
        for key, ks in states
    ]
    return {
        "name": rs.rule.name, "version": rs.rule.version, "text": rs.rule.text,
        "counter": rs.counter,
        "draining": rs.draining, "matches": rs.matches, "timeouts": rs.timeouts,
        "evictions": rs.evictions, "keys": keys,
        "timers": [[d, n, k] for d, n, k in rs.timer_entries()],
        "deadline": [[k, ks.deadline] for k, ks in states if ks.deadline < _INF],
        "key_evictions": [[k, ks.evicted] for k, ks in states if ks.evicted],
        **({"alerting": _encode_alerting(rs.alerting, t)} if rs.alerting is not None else {}),
    }


def _encode_alerting(alerting: Alerting, t: _Tables) -> dict[str, Any]:
    win, sup = alerting.window, alerting.suppressor
    out: dict[str, Any] = {"produced": alerting.produced}
    if win is not None:
        out["windows"] = [[k, [t.event(e) for e in evs], exact]
                          for k, evs, exact in win.state()]
        out["window_evictions"] = win.evicted
    if sup is not None:
        out["periods"] = [[g, until, n] for g, (until, n) in sup.periods.items()]
        out["pending"] = [[g, n] for g, n in sup.pending.items()]
        out["suppressed"] = sup.suppressed
    return out


def _restore_alerting(alerting: Alerting, saved: dict[str, Any], events: list[Event]) -> None:
    alerting.produced = saved.get("produced", 0)
    win, sup = alerting.window, alerting.suppressor
    if win is not None and "windows" in saved:
        win.restore([(_hashable_key(k), [events[i] for i in evs], exact)
                     for k, evs, exact in saved["windows"]], saved["window_evictions"])
    if sup is not None and "periods" in saved:
        sup.periods.clear()
        for g, until, n in saved["periods"]:
            sup.periods[_hashable_key(g)] = [until, n]
        sup.pending = {_hashable_key(g): n for g, n in saved["pending"]}
        sup.suppressed = saved["suppressed"]


def _encode_watermark(wm: WatermarkTracker) -> dict[str, Any]:
    return {
        "current": wm.current,
        "finished": wm.finished,
        "inputs": [list(entry) for entry in wm.inputs()],
    }


def encode(op: CepOperator, meta: dict[str, Any] | None = None) -> bytes:
    """Snapshot ``op`` (not modified) as msgpack bytes; ``meta`` (plain data: str keys, ints,
    strings, lists, maps) is stored as is and returned by :func:`decode`.  Raises
    :class:`CheckpointError` when an event holds a value msgpack cannot store."""
    t = _Tables()
    rules = [_encode_rule(rs, t) for rs in op.rules]
    buffered, last_ts = op.buffer_state()
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_ms": int(time.time() * 1000),
        "meta": meta or {},
        "events_in": op.events_in,
        "late": op.late,
        "watermark": _encode_watermark(op.watermarks),
        "buffer": {"events": [t.event(e) for e in buffered], "last_ts": last_ts},
        "rules": rules,
        "nodes": t.nodes,
        "events": t.events,
    }
    try:
        body = _pack(doc)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"cannot encode checkpoint: {exc}") from None
    return MAGIC + hashlib.sha256(body).digest() + body


def payload(data: bytes) -> tuple[bytes, bool]:
    """The msgpack payload of snapshot ``data`` and whether it was framed (checksum
    verified).  Raises :class:`CheckpointError` when a frame is short or its checksum does
    not match."""
    if not data.startswith(MAGIC):
        return data, False
    if len(data) < _HEADER:
        raise CheckpointError("corrupt checkpoint: shorter than its header (a torn write?)")
    body = data[_HEADER:]
    if not hmac.compare_digest(hashlib.sha256(body).digest(), data[len(MAGIC):_HEADER]):
        raise CheckpointError("checkpoint checksum mismatch: the file is damaged or was "
                              "altered since it was written; remove it to start over")
    return body, True


# --------------------------------------------------------------------------- decode


def _load(data: bytes) -> dict[str, Any]:
    """Verify the frame, parse and validate the envelope (format name and version, ``meta``
    a map with string keys)."""
    body, framed = payload(data)
    try:
        doc = _unpack(body)
    except CheckpointError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on corrupt input
        raise CheckpointError(f"corrupt checkpoint: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError("not a cep checkpoint (missing the 'cep.checkpoint' marker)")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version} is newer than this engine reads "
            f"(up to {FORMAT_VERSION}); run a newer cep or remove the checkpoint to start over")
    if version >= 2 and not framed:
        raise CheckpointError(f"checkpoint of format version {version} without its checksum "
                              "frame: damaged or altered; remove it to start over")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise CheckpointError("corrupt checkpoint: its meta is not a map of names")
    return doc


def read_meta(data: bytes) -> dict[str, Any]:
    """The ``meta`` map of a snapshot without restoring it.  Raises :class:`CheckpointError`."""
    meta: dict[str, Any] = _load(data).get("meta", {})
    return meta


def _restore_watermark(wm: WatermarkTracker, saved: dict[str, Any]) -> None:
    """Maxima come from the snapshot; out-of-orderness bounds from the running config."""
    for name, maximum, idle in saved["inputs"]:
        wm.add_input(name)
        if maximum != float("-inf"):
            wm.observe(name, maximum)
        if idle:
            wm.set_idle(name)
    if saved["finished"]:
        wm.finish()
    wm.current = max(wm.current, saved["current"])


def _computations(
    items: list[list[Any]], states: dict[str, State], nodes: list[PartialMatchNode], rule: str
) -> list[Computation]:
    out = []
    for name, node_i, _start_ts, _prev_ts, ck in items:
        state = states.get(name)
        if state is None:
            raise CheckpointError(f"rule {rule}: checkpoint names NFA state {name!r}, "
                                  "which the compiled rule does not have")
        key = START_CK if ck is None else (ck[0], ck[1])
        node = nodes[node_i] if node_i >= 0 else None
        if node is None and key is not START_CK:
            raise CheckpointError(f"rule {rule}: a partial match without events")
        out.append(Computation(state, node, key))
    return out


def _restore_rule(rs: RuleState, saved: dict[str, Any], nodes: list[PartialMatchNode],
                  report: RestoreReport, events: list[Event]) -> None:
    nfa: NFA = rs.rule.nfa
    states = {s.name: s for s in nfa.states}
    name = rs.rule.name
    evicted = {repr(k): n for k, n in saved.get("key_evictions", ())}
    for key, clock, partial, completed in saved["keys"]:
        done = _computations(completed, states, nodes, name)
        waiting = NO_COMPLETED
        if done:
            waiting = JavaHeap()
            waiting.a = done
        ks = KeyState(tuple(_computations(partial, states, nodes, name)), waiting, clock)
        ks.evicted = evicted.get(repr(key), 0)  # (absent before cohort eviction: 0)
        rs.restore_key(_hashable_key(key), ks)
        report.partial_matches += len(partial) - sum(1 for c in partial if c[4] is None)
    report.keys += len(saved["keys"])
    for k, d in saved["deadline"]:
        rs.restore_deadline(_hashable_key(k), d)
    rs.restore_timers([(d, n, _hashable_key(k)) for d, n, k in saved["timers"]])
    rs.counter = saved["counter"]
    rs.draining = saved["draining"]
    rs.matches = saved["matches"]
    rs.timeouts = saved["timeouts"]
    rs.evictions = saved["evictions"]
    if rs.alerting is not None and "alerting" in saved:
        _restore_alerting(rs.alerting, saved["alerting"], events)


def _saved_partials(saved: dict[str, Any]) -> int:
    return sum(len(p) - sum(1 for c in p if c[4] is None) for _, _, p, _ in saved["keys"])


def _compile_saved(saved: dict[str, Any]) -> CompiledRule | None:
    """The saved rule version compiled from its canonical text; ``None`` when the snapshot
    has no text or the text no longer compiles to the same version."""
    text = saved.get("text")
    if not text:
        return None
    rf, diags = parse_text(text, f"<checkpoint:{saved['name']}>")
    if any(d.is_error for d in diags) or len(rf.rules) != 1 or rf.lists:
        return None  # (a version that used lists: they cannot be read as they were)
    if any(d.is_error for d in check_rule(rf.rules[0], rf.path)):
        return None
    rule = build_rule(rf.rules[0], rf.path)
    return rule if rule.version == saved["version"] else None


def _draining_state(saved: dict[str, Any], nodes: list[PartialMatchNode],
                    report: RestoreReport, op: CepOperator,
                    events: list[Event]) -> RuleState | None:
    """A saved version that is not the running one, restored as a draining version; ``None``
    (its partial matches counted as dropped) when it cannot drain."""
    rule = _compile_saved(saved)
    if rule is None:
        report.partial_dropped += _saved_partials(saved)
        return None
    rs = op.rule_state(rule)
    sub = RestoreReport()
    _restore_rule(rs, saved, nodes, sub, events)
    if rs.draining:
        kept = rs.partial_matches()
    else:
        kept, dropped, _ = rs.start_draining()
        report.partial_dropped += dropped
    report.keys += len(rs.keys)
    report.partial_matches += kept
    return rs if rs.keys else None


def _same_version(rule: CompiledRule, saved: str) -> bool:
    """``saved`` is ``rule``'s version — or the version the same rule text had when versions
    hashed the whole canonical text, metadata included (snapshots written before metadata
    left the version): its state is the running rule's and is restored, not drained."""
    if rule.version == saved:
        return True
    return bool(rule.text) and not rule.lists and \
        hashlib.sha256(rule.text.encode("utf-8")).hexdigest()[:16] == saved


def _hashable_key(key: Any) -> Hashable:
    """Keys were hashable when saved; msgpack gives lists back only inside events."""
    return tuple(_hashable_key(k) for k in key) if isinstance(key, (list, tuple)) else key


def decode(data: bytes, op: CepOperator) -> RestoreReport:
    """Restore a snapshot into ``op``, a freshly built operator for the running rules.

    Rule state is matched by rule name; when the running version differs from the saved one
    (or the rule is gone) its state is dropped and listed in ``dropped_rules``.  Raises
    :class:`CheckpointError` for data that is not a snapshot, a corrupt one, or an unknown
    format version (never a partial restore of a newer format)."""
    doc = _load(data)
    report = RestoreReport(meta=doc.get("meta", {}), created_ms=doc.get("created_ms", 0))
    try:
        events = [Event(ts, seq, d, src, off, part)
                  for ts, seq, d, src, off, part in doc["events"]]
        nodes: list[PartialMatchNode] = []
        for stage, ev_i, prev_i in doc["nodes"]:
            nodes.append(PartialMatchNode(stage, events[ev_i], nodes[prev_i] if prev_i >= 0
                                          else None))
        running = {rs.rule.name: rs for rs in op.rules if not rs.draining}
        extra: list[RuleState] = []
        for saved in doc["rules"]:
            rs = running.get(saved["name"])
            if rs is not None and _same_version(rs.rule, saved["version"]):
                _restore_rule(rs, saved, nodes, report, events)
                if rs.draining:  # saved while draining; the running rules have it back
                    rs.revive()
                report.restored_rules.append(saved["name"])
            elif rs is not None:
                old = _draining_state(saved, nodes, report, op, events)
                entry = (saved["name"], saved["version"], rs.rule.version)
                if old is None:
                    report.dropped_rules.append(entry)
                else:
                    extra.append(old)
                    report.draining_rules.append(entry)
            else:
                report.dropped_rules.append((saved["name"], saved["version"], None))
                report.partial_dropped += _saved_partials(saved)
        op.rules = op.rules + extra
        op.state_changed()
        _restore_watermark(op.watermarks, doc["watermark"])
        buf = doc["buffer"]
        op.restore_buffer([events[i] for i in buf["events"]], buf["last_ts"])
        report.buffered = len(buf["events"])
        op.events_in = doc["events_in"]
        op.late = doc["late"]
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint (format {FORMAT_VERSION}): "
                              f"{type(exc).__name__}: {exc}") from None
    return report
