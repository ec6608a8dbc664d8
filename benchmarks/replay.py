#!/usr/bin/env python3
"""Benchmark: ``cep replay`` throughput against ``cep run``'s, and from a Kafka topic.

The events are ``gen_events.py --events N --users 50000 --seed 42`` (the file
``/tmp/cep_events_<N>_50000_42.jsonl`` is reused when it exists).  For Kafka they are appended
once, keyed by user, to a fresh topic of ``--partitions`` partitions; then the whole topic is
replayed by one process (manual assignment, no group), ``--repeat`` times.  The same file is
replayed too.  Two rule sets: brute_force alone, and the five peer patterns.

events/s = events ÷ wall time of the replay call (consumer start, offset lookup, fetching,
decoding, matching, the end-of-range flush; alerts are counted, not written).

**Commands** (``--cli``, no broker needed): ``cep run`` and ``cep replay`` as a user types
them, on the same file and rules, alternating (run, replay, replay, run, …) so that both see
the same load on a shared machine; medians of ``--repeat`` runs each.  Standard error is a
pseudo-terminal, so both draw their progress display as they would for a user; alerts go to
``/dev/null``.  Three figures per run: events ÷ wall time of the whole process (start-up and
rule compilation included), the events/s the command itself reports (reading, matching, the
end-of-input flush), and the CPU seconds (user + system) of the process — the least disturbed
by other work on a shared machine.

Usage (Kafka: a broker must be running; ``runtime/kafka/up.sh --port 19192`` starts one)::

    python benchmarks/replay.py --cli [--file /tmp/ev1m.jsonl] [--rules PATH] [--repeat 5]
    python benchmarks/replay.py --bootstrap 127.0.0.1:19192 [--events 1000000] [--repeat 3]
        [--out benchmarks/results/replay.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import re
import resource
import statistics
import subprocess
import sys
import threading
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


_RATE = re.compile(rb"([\d,]+) events/s\)")


def run_command(args: list[str]) -> tuple[float, float, int]:
    """Run one ``cep`` command with standard error on a pseudo-terminal (drained by a
    thread); ``(wall seconds, CPU seconds of the child (user + system), events/s the command
    reported)``."""
    master, slave = pty.openpty()
    seen: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cep.cli", *args], stdout=subprocess.PIPE,
                          stderr=slave, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    os.close(slave)
    reader.join(5)
    os.close(master)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}): {b''.join(seen)[-2000:]!r}")
    rates = _RATE.findall(b"".join(seen) + proc.stdout)
    return wall, cpu, int(rates[-1].replace(b",", b"")) if rates else 0


def cli_compare(path: Path, rules: str, repeat: int) -> dict[str, Any]:
    """``cep run`` and ``cep replay`` on ``path``, alternating; medians per command."""
    events = sum(1 for _ in path.open("rb"))
    cmds = {
        "run": ["run", "-r", rules, "-i", str(path), "-o", os.devnull],
        "replay": ["replay", "-r", rules, "-i", str(path), "-o", os.devnull, "--progress"],
    }
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cmds}
    for i in range(repeat):
        for name in ("run", "replay") if i % 2 == 0 else ("replay", "run"):
            wall, cpu, reported = run_command(cmds[name])
            runs[name].append({"seconds": round(wall, 3), "cpu_s": round(cpu, 3),
                               "events_per_s": round(events / wall),
                               "reported_events_per_s": reported})
            print(f"{name:6} {wall:6.2f} s  {cpu:6.2f} CPU s  {events / wall:12,.0f} events/s "
                  f"(wall)  {reported:12,} events/s (reported)", flush=True)
    out: dict[str, Any] = {"file": str(path), "events": events, "rules": rules,
                           "commands": {k: " ".join(["cep", *v]) for k, v in cmds.items()}}
    for name, rs in runs.items():
        out[name] = {
            "runs": rs,
            "median_events_per_s": round(statistics.median(r["events_per_s"] for r in rs)),
            "median_reported_events_per_s": round(statistics.median(
                r["reported_events_per_s"] for r in rs)),
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in rs), 3),
        }
    ratio = out["replay"]["median_events_per_s"] / out["run"]["median_events_per_s"]
    cpu_ratio = out["replay"]["median_cpu_s"] / out["run"]["median_cpu_s"]
    out["replay_over_run"] = round(ratio, 3)
    out["replay_cpu_over_run_cpu"] = round(cpu_ratio, 3)
    print(f"medians: run {out['run']['median_events_per_s']:,}  replay "
          f"{out['replay']['median_events_per_s']:,} events/s (wall): replay/run = {ratio:.3f}; "
          f"CPU s run {out['run']['median_cpu_s']}  replay {out['replay']['median_cpu_s']}: "
          f"replay/run = {cpu_ratio:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", action="store_true",
                    help="compare the cep run and cep replay commands on a file")
    ap.add_argument("--file", help="events file for --cli (default: generated)")
    ap.add_argument("--rules", action="append",
                    help="rule file for --cli; repeatable (default: the five peer patterns)")
    ap.add_argument("--bootstrap")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "replay.json"))
    args = ap.parse_args()

    if args.cli:
        path = Path(args.file) if args.file else events_file(args.events)
        results = {"cores": os.cpu_count(), "load_average_before": os.getloadavg(),
                   "sets": [cli_compare(path, r, args.repeat)
                            for r in args.rules or [str(PATTERNS)]]}
        results["load_average_after"] = os.getloadavg()
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
        return
    if not args.bootstrap:
        ap.error("give --bootstrap HOST:PORT (Kafka) or --cli")
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
