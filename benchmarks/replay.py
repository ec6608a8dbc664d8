#!/usr/bin/env python3
"""Benchmark: ``cep replay`` throughput, from a Kafka topic and from the same events in a file.

The events are ``gen_events.py --events N --users 50000 --seed 42`` (the file
``/tmp/cep_events_<N>_50000_42.jsonl`` is reused when it exists).  For Kafka they are appended
once, keyed by user, to a fresh topic of ``--partitions`` partitions; then the whole topic is
replayed by one process (manual assignment, no group), ``--repeat`` times.  The same file is
replayed too.  Two rule sets: brute_force alone, and the five peer patterns.

events/s = events ÷ wall time of the replay call (consumer start, offset lookup, fetching,
decoding, matching, the end-of-range flush; alerts are counted, not written).

Usage (a broker must be running; ``runtime/kafka/up.sh --port 19192`` starts one)::

    python benchmarks/replay.py --bootstrap 127.0.0.1:19192 [--events 1000000] [--repeat 3]
        [--out benchmarks/results/replay.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.partitioner import DefaultPartitioner  # noqa: E402

from benchmarks.kafka_e2e import BRUTE_FORCE, append  # noqa: E402
from cep.app.replay import ReplayOptions, replay_files, replay_kafka  # noqa: E402
from cep.app.rules import load_rule_set  # noqa: E402
from cep.config import KafkaConfig, SourceConfig  # noqa: E402
from cep.io.kafka import OffsetBound  # noqa: E402

GEN = ROOT.parent / "shared" / "peers" / "gen_events.py"
PATTERNS = ROOT.parent / "shared" / "peers" / "patterns.cep"


def events_file(n: int) -> Path:
    """The generated events, made once."""
    path = Path(f"/tmp/cep_events_{n}_50000_42.jsonl")
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, str(GEN), "--events", str(n), "--users", "50000",
                        "--seed", "42", "--out", str(tmp)], check=True)
        tmp.rename(path)
    return path


async def fill_topic(bootstrap: str, topic: str, path: Path, partitions: int) -> float:
    """Create ``topic`` and append every line of ``path`` keyed by its user, partitioned as
    Kafka's default partitioner does; seconds taken (:func:`kafka_e2e.append`)."""
    import orjson

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    part = DefaultPartitioner()
    ids = list(range(partitions))
    rows = []
    with path.open("rb") as fh:
        for line in fh:
            value = line.rstrip(b"\n")
            key = orjson.loads(value)["user"].encode()
            rows.append((part(key, ids, ids), key, value))
    return await append(bootstrap, topic, rows)


def rules_of(name: str) -> list[Any]:
    if name == "brute_force":
        tmp = Path(f"/tmp/cep-replay-bench-{os.getpid()}.cep")
        tmp.write_text(BRUTE_FORCE)
        rs = load_rule_set([str(tmp)])
        tmp.unlink()
    else:
        rs = load_rule_set([str(PATTERNS)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def measure(kind: str, rules: list[Any], bootstrap: str, topic: str, path: Path
            ) -> dict[str, Any]:
    opts = ReplayOptions([rules])
    started = time.perf_counter()
    if kind == "kafka":
        s = replay_kafka(KafkaConfig(bootstrap_servers=(bootstrap,)),
                         [SourceConfig("events", "kafka", topic=topic)], opts,
                         OffsetBound(), OffsetBound())
    else:
        s = replay_files([str(path)], opts)
    wall = time.perf_counter() - started
    cpu = os.times()
    return {"events": s.events, "alerts": s.alerts, "seconds": round(wall, 3),
            "events_per_s": round(s.events / wall), "cpu_user_s": round(cpu.user, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "replay.json"))
    args = ap.parse_args()

    path = events_file(args.events)
    topic = f"cep-replay-bench-{uuid.uuid4().hex[:8]}"
    append_s = asyncio.run(fill_topic(args.bootstrap, topic, path, args.partitions))
    print(f"appended {args.events:,} events to {topic} in {append_s:.1f} s", flush=True)
    results: dict[str, Any] = {
        "events": args.events, "partitions": args.partitions, "file": str(path),
        "cores": os.cpu_count(), "load_average_before": os.getloadavg(), "runs": {}}
    for rules_name in ("brute_force", "five_patterns"):
        rules = rules_of(rules_name)
        for kind in ("kafka", "file"):
            runs = []
            for _ in range(args.repeat):
                r = measure(kind, rules, args.bootstrap, topic, path)
                runs.append(r)
                print(f"{rules_name:14} {kind:5} {r['events']:,} events  {r['alerts']:,} "
                      f"alerts  {r['seconds']:.2f} s  {r['events_per_s']:,} events/s",
                      flush=True)
            results["runs"][f"{rules_name}/{kind}"] = {
                "runs": runs,
                "median_events_per_s": round(statistics.median(r["events_per_s"] for r in runs)),
            }
    results["load_average_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
