"""Run metrics: plain counters kept by the pipeline thread, exposed in Prometheus' text format.

The pipeline never touches a Prometheus object on its hot path.  It bumps plain integers
(:class:`RunMetrics`: per output record and per input batch, never per rule or key) and, when
``/metrics`` or ``/status`` is read, builds an :class:`EngineSnapshot` of its operators
between two events.  :class:`EngineCollector`, registered in a per-run
``CollectorRegistry``, turns one snapshot into metric families at scrape time.

Metric families (all names prefixed ``cep_``; times in seconds unless the name says ``ms``):

========================================  =======  ==========================================
``events_in_total{source}``               counter  events decoded and fed to the engine
``alerts_total{rule,severity}``           counter  alert records (timed-out ones included)
``late_events_total{source}``             counter  events at or below the watermark
``dead_letters_total{source,reason}``     counter  input that could not be decoded
``partial_matches{rule}``                 gauge    live partial matches (draining included)
``keys{rule}``                            gauge    keys holding state
``evictions_total{rule}``                 counter  partial matches evicted by the per-key cap
``truncated_alerts_total{rule}``          counter  alerts cut down to ``max_events_per_match``
``partial_matches_dropped_total``         counter  partial matches dropped by reloads
``suppressed_alerts_total{rule}``         counter  alerts held back by ``suppress for``
``suppression_groups{rule}``              gauge    suppression groups holding state
``window_keys{rule}``                     gauge    keys with a ``having`` / ``all of`` window
``window_events{rule}``                   gauge    events held in those windows
``window_evictions_total{rule}``          counter  events dropped from full windows
``rule_info{rule,version,state}``         gauge    1 per running version (active, draining)
``watermark_ms{input}``                   gauge    event-time watermark per input (epoch ms)
``consumer_lag{topic,partition}``         gauge    Kafka: messages not yet consumed
``reloads_total{result}``                 counter  rule reloads, ``ok`` or ``failed``
``rules_last_reload_successful``          gauge    1 when the last reload attempt succeeded
``rules_last_reload_timestamp_seconds``   gauge    when the last reload attempt finished
``rule_errors{file}``                     gauge    errors of the last failed reload, by file
``processing_latency_seconds``            hist.    engine time of one input event (sampled)
========================================  =======  ==========================================
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from cep.operator.alerting import ALERTING_STATS
from cep.operator.cep_operator import CepOperator, Emit

__all__ = ["LATENCY_BUCKETS", "SAMPLE_MASK", "RunMetrics", "EngineSnapshot", "ReloadState",
           "EngineCollector", "new_registry", "render", "operator_snapshot"]

# seconds; one event takes microseconds, one that releases a window's worth of timers more
LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
                   0.05, 0.1, 0.25, 1.0)
SAMPLE_MASK = 0xFF  # one event in 256 is timed


class RunMetrics:
    """Counters of one run, updated on the pipeline thread only.

    ``events`` per source, ``alerts`` per ``(rule, severity)``, ``late`` per source,
    ``dead_letters`` per ``(source, reason)``; ``latency`` bucket counts (upper bounds
    :data:`LATENCY_BUCKETS` in seconds, plus +Inf) with their sum and count."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.alerts: Counter[tuple[str, str]] = Counter()
        self.late: Counter[str] = Counter()
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def count_record(self, sink: str, record: dict[str, Any]) -> None:
        """Count one output record by its kind: an alert (it has ``rule``), a late event or a
        dead letter."""
        rule = record.get("rule")
        if rule is not None:
            self.alerts[(rule, record.get("severity", ""))] += 1
        elif sink == "late":
            self.late[record.get("source", "")] += 1
        elif sink == "dead_letter":
            self.dead_letters[(record.get("source", ""), record.get("reason", ""))] += 1

    def counting(self, emit: Emit) -> Emit:
        """``emit`` that counts each record (:meth:`count_record`) before passing it on."""
        count = self.count_record

        def counted(sink: str, record: dict[str, Any]) -> None:
            count(sink, record)
            emit(sink, record)

        return counted

    def observe_latency(self, seconds: float) -> None:
        """Record one processing time (seconds) in the histogram."""
        self.latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def copy(self) -> RunMetrics:
        """A copy that other threads may read while this one keeps counting."""
        c = RunMetrics()
        c.events, c.alerts = Counter(self.events), Counter(self.alerts)
        c.late, c.dead_letters = Counter(self.late), Counter(self.dead_letters)
        c.latency, c.latency_sum, c.latency_count = (
            list(self.latency), self.latency_sum, self.latency_count)
        return c


@dataclass
class EngineSnapshot:
    """The state of a run at one moment, taken on the pipeline thread between two events.

    ``rules``: per active rule ``{"name", "version", "severity", "file", "line", "keys",
    "partial_matches", "matches", "timeouts", "evictions", "truncated"}`` and the
    :data:`~cep.operator.alerting.ALERTING_STATS` (state sizes include
    draining versions; counters are cumulative over versions); ``draining``: ``{"rule",
    "version", "keys", "partial_matches"}`` per draining version; ``watermarks``: input →
    epoch ms (−∞ before the first event); ``lag``: ``(topic, partition)`` → messages behind
    the end (Kafka); ``partial_dropped``: partial matches dropped by reloads so far; ``plan``:
    Kafka mode's path of each rule and its repartition topics (``None`` in file mode)."""

    mode: str
    metrics: RunMetrics
    rules: list[dict[str, Any]] = field(default_factory=list)
    draining: list[dict[str, Any]] = field(default_factory=list)
    watermarks: dict[str, float] = field(default_factory=dict)
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    partial_dropped: int = 0
    plan: dict[str, Any] | None = None  # Kafka: KafkaPlan.as_dict() (cep.app.kafka_plan)


def operator_snapshot(ops: list[CepOperator], mode: str, metrics: RunMetrics,
                      file_of: Callable[[str], tuple[str, int]] | None = None) -> EngineSnapshot:
    """Merge the statistics of ``ops`` (one per task in Kafka mode) into a snapshot.
    ``file_of(rule_name)`` gives the rule's ``(file, line)`` when known."""
    rules: dict[str, dict[str, Any]] = {}
    draining: dict[tuple[str, str], dict[str, Any]] = {}
    snap = EngineSnapshot(mode=mode, metrics=metrics.copy())
    for op in ops:
        st = op.stats()
        for name, r in st["rules"].items():
            entry = rules.get(name)
            if entry is None:
                file, line = file_of(name) if file_of else ("", 0)
                rules[name] = dict(r, name=name, file=file, line=line)
                continue
            for k in ("keys", "partial_matches", "matches", "timeouts", "evictions",
                      "truncated", *ALERTING_STATS):
                entry[k] += r[k]
        for d in st["draining"]:
            ent = draining.setdefault((d["rule"], d["version"]), dict(d, keys=0,
                                                                     partial_matches=0))
            ent["keys"] += d["keys"]
            ent["partial_matches"] += d["partial_matches"]
        snap.watermarks.update(op.watermarks.per_input())
        snap.partial_dropped += st["dropped_partial_matches"]
    snap.rules = [rules[n] for n in sorted(rules)]
    snap.draining = [draining[k] for k in sorted(draining)]
    return snap


@dataclass
class ReloadState:
    """Reload outcomes for metrics: counts, whether the last attempt succeeded, when it
    finished (epoch seconds, 0 before the first), and its errors per file."""

    ok: int = 0
    failed: int = 0
    last_ok: bool = True
    last_at: float = 0.0
    errors_by_file: dict[str, int] = field(default_factory=dict)


class EngineCollector:
    """A Prometheus collector that renders one :class:`EngineSnapshot` per scrape.

    ``observe()`` returns ``(snapshot, reload_state)``; it is called once per collection."""

    def __init__(self, observe: Callable[[], tuple[EngineSnapshot, ReloadState]]) -> None:
        self.observe = observe

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family of the module table."""
        snap, rl = self.observe()
        m = snap.metrics
        yield _counter("cep_events_in", "Events decoded and fed to the engine.", ["source"],
                       [((s,), n) for s, n in sorted(m.events.items())])
        yield _counter("cep_alerts", "Alert records emitted (timed-out partial matches "
                       "included).", ["rule", "severity"], sorted(m.alerts.items()))
        yield _counter("cep_late_events", "Events at or below the watermark on arrival.",
                       ["source"], [((s,), n) for s, n in sorted(m.late.items())])
        yield _counter("cep_dead_letters", "Input records that could not be decoded.",
                       ["source", "reason"], sorted(m.dead_letters.items()))
        yield _gauge("cep_partial_matches", "Live partial matches per rule (draining versions "
                     "included).", ["rule"],
                     [((r["name"],), r["partial_matches"]) for r in snap.rules])
        yield _gauge("cep_keys", "Keys holding matcher state per rule.", ["rule"],
                     [((r["name"],), r["keys"]) for r in snap.rules])
        yield _counter("cep_evictions", "Partial matches evicted by "
                       "max_partial_matches_per_key.", ["rule"],
                       [((r["name"],), r["evictions"]) for r in snap.rules])
        yield _counter("cep_truncated_alerts", "Alert records whose match was cut down to "
                       "max_events_per_match.", ["rule"],
                       [((r["name"],), r["truncated"]) for r in snap.rules])
        yield _counter("cep_suppressed_alerts", "Alerts held back by suppress for.", ["rule"],
                       [((r["name"],), r["suppressed"]) for r in snap.rules])
        yield _gauge("cep_suppression_groups", "Suppression groups holding state per rule.",
                     ["rule"], [((r["name"],), r["suppression_groups"]) for r in snap.rules])
        yield _gauge("cep_window_keys", "Keys holding a having / all of window per rule.",
                     ["rule"], [((r["name"],), r["window_keys"]) for r in snap.rules])
        yield _gauge("cep_window_events", "Events held in having / all of windows per rule.",
                     ["rule"], [((r["name"],), r["window_events"]) for r in snap.rules])
        yield _counter("cep_window_evictions", "Events dropped from full having / all of "
                       "windows.", ["rule"],
                       [((r["name"],), r["window_evictions"]) for r in snap.rules])
        yield _counter("cep_partial_matches_dropped", "Partial matches dropped by rule "
                       "reloads (removed rules, unbounded partial matches of changed rules).",
                       [], [((), snap.partial_dropped)])
        info = [((r["name"], r["version"], "active"), 1) for r in snap.rules]
        info += [((d["rule"], d["version"], "draining"), 1) for d in snap.draining]
        yield _gauge("cep_rule_info", "1 for each running rule version.",
                     ["rule", "version", "state"], info)
        yield _gauge("cep_watermark_ms", "Event-time watermark per input (epoch ms).",
                     ["input"], [((i,), w) for i, w in sorted(snap.watermarks.items())
                                 if w != float("-inf")])
        if snap.mode == "kafka":
            yield _gauge("cep_consumer_lag", "Messages between the consumed position and "
                         "the end of each source partition.", ["topic", "partition"],
                         [((t, str(p)), n) for (t, p), n in sorted(snap.lag.items())])
        yield _counter("cep_reloads", "Rule reloads by result.", ["result"],
                       [(("ok",), rl.ok), (("failed",), rl.failed)])
        yield _gauge("cep_rules_last_reload_successful", "1 when the last reload attempt "
                     "succeeded (the running rules match the files).", [],
                     [((), 1 if rl.last_ok else 0)])
        yield _gauge("cep_rules_last_reload_timestamp_seconds", "When the last reload attempt "
                     "finished (Unix time; 0 before the first).", [], [((), rl.last_at)])
        yield _gauge("cep_rule_errors", "Errors of the last failed reload, per rule file.",
                     ["file"], [((f,), n) for f, n in sorted(rl.errors_by_file.items())])
        hist = HistogramMetricFamily("cep_processing_latency_seconds",
                                     "Engine time of one input event: buffering, matching and "
                                     "the timers its watermark fires (1 event in 256 timed).")
        cumulative, buckets = 0, []
        for bound, n in zip([*LATENCY_BUCKETS, float("inf")], m.latency, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        hist.add_metric([], buckets, m.latency_sum)
        yield hist


_Samples = Iterable[tuple[tuple[str, ...], float]]


_F = TypeVar("_F", CounterMetricFamily, GaugeMetricFamily)


def _family(fam: _F, samples: _Samples) -> _F:
    for values, n in samples:
        fam.add_metric(list(values), n)
    return fam


def _counter(name: str, doc: str, labels: list[str], samples: _Samples) -> CounterMetricFamily:
    return _family(CounterMetricFamily(name, doc, labels=labels), samples)


def _gauge(name: str, doc: str, labels: list[str], samples: _Samples) -> GaugeMetricFamily:
    return _family(GaugeMetricFamily(name, doc, labels=labels), samples)


def new_registry(collector: EngineCollector) -> CollectorRegistry:
    """A registry of its own for one run (nothing global), holding ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text exposition format."""
    return generate_latest(registry)
