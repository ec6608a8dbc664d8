#!/usr/bin/env python3
"""Benchmark: a Kafka source task's CPU per event without the broker — fetched batches fed
message by message against the batched feed.

The input of ``kafka_e2e.py`` (``gen_events.py``, 4 partitions keyed by user) is cut into
fetched batches of ``--batch`` messages per partition, as the consumer hands them over, and
fed to one operator per partition (the benchmark's rule, brute_force, or ``--rules``):

* **per message** — :meth:`MessageDecoder.decode` of each value, then
  :meth:`CepOperator.on_event` (how Kafka mode fed its operators before the batched feed);
* **batched** — :func:`cep.app.kafka_feed.feed_batch` (one decoding call per batch where
  exact, then :meth:`CepOperator.on_batch`: the rule set's generated loop);
* **scanned** — the same with the C line scanner (:func:`cep.app.kafka_feed.prescan_for`,
  as Kafka mode feeds a JSON source with one in-order input): messages no rule wants are
  passed over undecoded (``CEP_PUREPYTHON=1``, or no built extension: as batched).

With ``--stage shuffle`` a shuffle task is measured instead: the same events merged into one
stream in ``(event time, partition, offset)`` order, as its merger releases them, cut into
releases of ``--batch`` × 4 records after each of which the watermark moves to the release's
last time; **per message** decodes and feeds each released record with ``on_event``,
**batched** is :func:`cep.app.kafka_feed.feed_released` (runs decoded together, the generated
loop with a partition per record).

The ways alternate ``--repeat`` times in one process; events/s is events ÷ CPU seconds
of the feeding alone (no Kafka client, no commits), and both must emit the same alerts.

Usage::

    python benchmarks/kafka_feed.py [--events 1000000] [--repeat 5] [--rules FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from aiokafka.partitioner import DefaultPartitioner

from cep.app.kafka_feed import Released, feed_batch, feed_released, prescan_for
from cep.app.rules import load_rule_set
from cep.config import SourceConfig
from cep.event import Event
from cep.io.kafka import MessageDecoder
from cep.jsontext import encode_json
from cep.operator.cep_operator import CepOperator
from cep.operator.time_guard import FutureGuard

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT.parent / "shared" / "peers" / "gen_events.py"
PARTITIONS = 4
BRUTE_FORCE = """\
rule brute_force
  key by user
  pattern
    begin fail  where type == "login" and not ok
    next  more  where type == "login" and not ok  times 4 consecutive
  within 5m
end
"""


class Message(NamedTuple):
    """The two fields of a consumed record that feeding reads."""

    offset: int
    value: bytes


def batches(n: int, users: int, seed: int, size: int) -> list[tuple[int, list[Message]]]:
    """``(partition, messages)`` fetched batches, partitions interleaved as fetches come."""
    out = subprocess.run([sys.executable, str(GEN), "--events", str(n), "--users", str(users),
                          "--seed", str(seed)], capture_output=True, check=True).stdout
    part = DefaultPartitioner()
    parts = list(range(PARTITIONS))
    by: list[list[Message]] = [[] for _ in parts]
    for line in out.splitlines():
        p = part(orjson.loads(line)["user"].encode(), parts, parts)
        by[p].append(Message(len(by[p]), line))
    fetched = []
    for i in range(0, max(len(m) for m in by), size):
        fetched += [(p, by[p][i:i + size]) for p in parts if by[p][i:i + size]]
    return fetched


def run(way: str, fetched: list[tuple[int, list[Message]]], rules: list[Any],
        decoder: MessageDecoder) -> tuple[float, int, list[bytes]]:
    """Feed every batch one way; returns ``(CPU seconds, events, alerts as JSON)``."""
    alerts: list[bytes] = []

    def emit(sink: str, rec: dict[str, Any]) -> None:
        if sink == "alerts":
            alerts.append(encode_json(rec, newline=False))

    ops = [CepOperator(rules, emit, {f"events/{p}": 0}, 10_000, FutureGuard(86_400_000,
                                                                            time.time))
           for p in range(PARTITIONS)]
    seqs = [0] * PARTITIONS
    dead: list[dict[str, Any]] = []
    scans = [prescan_for(op, decoder, f"events/{p}") if way == "scanned" else None
             for p, op in enumerate(ops)]
    t0 = time.process_time()
    for p, msgs in fetched:
        op, name = ops[p], f"events/{p}"
        if way != "per message":
            seqs[p] = feed_batch(op, decoder, msgs, partition=p, expected=msgs[0].offset,
                                 input_name=name, seq=seqs[p], dead_letter=dead.append,
                                 prescan=scans[p]).seq
            continue
        seq, decode, on_event = seqs[p], decoder.decode, op.on_event
        for m in msgs:
            res = decode(m.value, p, m.offset, seq + 1)
            if type(res) is Event:
                seq += 1
                on_event(res, name)
            else:
                dead.append(res)  # type: ignore[arg-type]
        seqs[p] = seq
    return time.process_time() - t0, sum(seqs), alerts


def releases(fetched: list[tuple[int, list[Message]]], decoder: MessageDecoder, size: int
             ) -> list[list[Released]]:
    """The events of ``fetched`` as a shuffle task's merger releases them: in ``(event time,
    input, offset)`` order, ``size`` records at a time."""
    merged: list[Released] = []
    for p, msgs in fetched:
        for m in msgs:
            ev = decoder.decode(m.value, p, m.offset, 0)
            if type(ev) is Event:
                merged.append((ev.ts, f"events/{p}", m.offset, m.value))
    merged.sort(key=lambda rec: (rec[0], rec[1], rec[2]))
    return [merged[i:i + size] for i in range(0, len(merged), size)]


def run_shuffle(way: str, released: list[list[Released]], rules: list[Any],
                decoder: MessageDecoder) -> tuple[float, int, list[bytes]]:
    """A shuffle task's operator fed every release one way; as :func:`run`."""
    alerts: list[bytes] = []

    def emit(sink: str, rec: dict[str, Any]) -> None:
        if sink == "alerts":
            alerts.append(encode_json(rec, newline=False))

    op = CepOperator(rules, emit, {"shuffle": 0}, 10_000, FutureGuard(None))
    decoders, dead = {"events": decoder}, []
    seq = 0
    t0 = time.process_time()
    for recs in released:
        if way == "batched":
            seq = feed_released(op, decoders, recs, input_name="shuffle", seq=seq,
                                dead_letter=dead.append).seq
        else:
            for _ts, name, offset, value in recs:
                res = decoder.decode(value, int(name.rpartition("/")[2]), offset, seq + 1)
                if type(res) is Event:
                    seq += 1
                    op.on_event(res, "shuffle")
        wm = recs[-1][0]
        if wm > op.watermark:
            op.advance(op.watermarks.observe("shuffle", wm + 1))
    op.finish()
    return time.process_time() - t0, seq, alerts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch", type=int, default=1250,
                    help="messages per fetched batch and partition (MAX_POLL_RECORDS 5000 "
                    "over 4 partitions)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rules", type=Path, help="rule file (default: brute_force)")
    ap.add_argument("--stage", choices=["source", "shuffle"], default="source",
                    help="a source task's feed (default) or a shuffle task's")
    args = ap.parse_args()
    rules_path = args.rules
    if rules_path is None:
        rules_path = Path(tempfile.mkdtemp()) / "brute_force.cep"
        rules_path.write_text(BRUTE_FORCE)
    rs = load_rule_set([str(rules_path)])
    assert rs.ok, rs.diagnostics
    decoder = MessageDecoder(SourceConfig("events", "kafka", topic="events"), 1 << 20)
    fetched = batches(args.events, args.users, args.seed, args.batch)
    ways = ["per message", "batched"] + (["scanned"] if args.stage == "source" else [])
    rates: dict[str, list[float]] = {way: [] for way in ways}
    released = (releases(fetched, decoder, args.batch * PARTITIONS)
                if args.stage == "shuffle" else [])
    reference: list[bytes] | None = None
    for _ in range(args.repeat):
        for way in rates:
            if args.stage == "shuffle":
                cpu, events, alerts = run_shuffle(way, released, rs.rules, decoder)
            else:
                cpu, events, alerts = run(way, fetched, rs.rules, decoder)
            reference = alerts if reference is None else reference
            assert alerts == reference, f"{way}: other alerts"
            rates[way].append(events / cpu)
            print(f"{way}: {events:,} events, {len(alerts):,} alerts, {cpu:.2f} s CPU = "
                  f"{events / cpu:,.0f} events/s", flush=True)
    med = {w: statistics.median(r) for w, r in rates.items()}
    base = med["per message"]
    print("medians: " + ", ".join(f"{w} {v:,.0f} events/s ({v / base:.2f}×)"
                                  for w, v in med.items()))


if __name__ == "__main__":
    main()
