"""What ``cep run`` tells the user after a file run: the summary line and the advice the
input's quality supports (late events with the out-of-orderness that would have matched them,
dead letters, rules whose first stage took nothing).  Plain text from plain data."""

from __future__ import annotations

from cep.app.pipeline import RunSummary
from cep.app.settings import FileRun

__all__ = ["LATE_SHARE", "IDLE_RULE_EVENTS", "input_advice", "duration_text", "summary_line"]

LATE_SHARE = 0.01
"""A file run whose late events pass this share of its events says what disorder it saw."""
IDLE_RULE_EVENTS = 1000
"""A run over at least this many events names the rules whose first stage took none."""


def input_advice(summary: RunSummary, plan: FileRun) -> list[str]:
    """Warnings about the input a run's summary supports: many late events (with the
    ``--max-out-of-orderness`` that would have matched 99.9 % of them), many dead letters,
    rules whose first stage took no event."""
    out = []
    events, late = summary.events, summary.late
    if late and late > LATE_SHARE * events and summary.suggested_out_of_orderness_ms is not None:
        ms = summary.suggested_out_of_orderness_ms
        now = plan.options.max_out_of_orderness_ms
        out.append(f"cep: warning: {late / events:.1%} of the events were late (they arrived "
                   f"after the watermark passed them, max-out-of-orderness {now} ms); "
                   f"--max-out-of-orderness {duration_text(ms + 1)} would have matched 99.9 % "
                   "of them")
    total = events + summary.dead_letters
    if events and summary.dead_letters > LATE_SHARE * total and summary.first_dead_letters:
        # (a file of dead letters alone is reported, with its first reasons, by `cep run`)
        out.append(f"cep: warning: {summary.dead_letters / total:.1%} of the input went to the "
                   f"dead letters; the first: {summary.first_dead_letters[0]}")
    if events >= IDLE_RULE_EVENTS and summary.idle_rules:
        out.append(f"cep: note: the first stage of {', '.join(summary.idle_rules)} took none "
                   f"of the {events:,} events (a field name or value that does not occur?)")
    return out


def duration_text(ms: int) -> str:
    """``ms`` as the shortest exact duration flag (``90s``, ``1500ms``), rounded up to a
    whole second above 10 s."""
    if ms > 10_000:
        ms = -(-ms // 1000) * 1000
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def summary_line(summary: RunSummary, plan: FileRun) -> str:
    """``N events, N alerts, N late, N dead letters, T s (R events/s)``, saying where late
    events and dead letters were not kept."""
    counts = summary.sink_counts
    kept = plan.outputs
    return ", ".join([
        *([f"resumed after line {summary.resumed_after:,}"] if summary.resumed_after else []),
        f"{summary.events:,} events",
        f"{counts.get('alerts', 0):,} alerts",
        f"{summary.late:,} late"
        + ("" if "late" in kept or not summary.late else " (not kept: use --late)"),
        f"{summary.dead_letters:,} dead letters"
        + ("" if "dead_letter" in kept or not summary.dead_letters
           else " (not kept: use --dead-letter)"),
        f"{summary.elapsed_s:.2f} s ({summary.events_per_s:,.0f} events/s)",
    ])
