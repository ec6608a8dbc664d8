#!/usr/bin/env python3
"""Benchmark: Kafka mode end to end against a real broker.

* **Throughput** — ``cep run --config`` processes (1, then 2 in one consumer group) are started
  on an empty 4-partition topic and wait until the group has settled; then N events are
  appended as fast as the producer can (the append rate is reported too) and the clock stops
  when the group's committed offsets reach the end of the topic — with exactly-once that is
  the moment the last alerts are committed.  events/s = N ÷ (last commit − first append).
  The producer's record batches are built before the clock starts and the group's offsets are
  polled by one long-lived admin client, so the load generator takes little of the two cores
  it shares with the broker and ``cep``; unrecorded runs (``--warmup``) first let the
  broker's JIT compile its hot paths.  With ``--repeat`` the process counts alternate and
  the medians are compared.  CPU seconds of ``cep``, the broker and the
  load generator in the measured interval are reported.
* **Latency** — one process; events are appended at a steady rate (default 5,000/s).  Input
  and alert topics use ``LogAppendTime``, so each message carries the broker's append time.
  For every alert: *append→append* = alert's append time − append time of the match's last
  event (the definition of the target; the alert is then written but its transaction not yet
  committed), and *append→visible* = when a ``read_committed`` consumer received the alert −
  the same event's append time (what a downstream consumer sees with exactly-once).

* **Versions side by side** — ``--engine DIR`` (repeated) runs ``cep`` from each project
  directory given (its ``.venv``), alternating within each repeat; medians per version.

Usage (a broker must be running; ``runtime/kafka/up.sh --port 19192`` starts one)::

    python benchmarks/kafka_e2e.py --bootstrap 127.0.0.1:19192 [--events 500000]
        [--rules benchmarks/kafka_rules.cep] [--rate 5000] [--seconds 20] [--out results.json]
        [--engine /path/to/other/checkout --engine .]

Results are printed and written as JSON; ``docs/performance.md`` quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

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


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def generate(n: int, users: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    """``(partition, key, value)`` per event, partitioned by user as a keyed producer would."""
    out = subprocess.run([sys.executable, str(GEN), "--events", str(n), "--users", str(users),
                          "--seed", str(seed)], capture_output=True, check=True).stdout
    part = DefaultPartitioner()
    parts = list(range(PARTITIONS))
    rows = []
    for line in out.splitlines():
        key = orjson.loads(line)["user"].encode()
        rows.append((part(key, parts, parts), key, line))
    return rows


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        cfg = {"message.timestamp.type": "LogAppendTime"}
        await admin.create_topics([NewTopic(n, partitions, 1, topic_configs=cfg) for n in names])
    finally:
        await admin.close()


def batches_of(producer: AIOKafkaProducer, rows: list[tuple[int, bytes, bytes]]
               ) -> list[tuple[int, Any]]:
    """Closed record batches ``(partition, batch)`` holding ``rows`` in order per partition,
    built by the producer's batch API (up to its ``max_batch_size`` each)."""
    out: list[tuple[int, Any]] = []
    open_: dict[int, Any] = {}
    for p, key, value in rows:
        b = open_.get(p)
        if b is None:
            b = open_[p] = producer.create_batch()
        if b.append(key=key, value=value, timestamp=None) is None:
            b.close()
            out.append((p, b))
            b = open_[p] = producer.create_batch()
            b.append(key=key, value=value, timestamp=None)
    for p, b in open_.items():
        b.close()
        out.append((p, b))
    return out


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                            max_batch_size=512 * 1024)


async def append(bootstrap: str, topic: str, rows: list[tuple[int, bytes, bytes]],
                 rate: float) -> float:
    """Append rows at ``rate`` events/s with the producer's batch API, 1/100 s of events
    at a time.  Returns the seconds it took."""
    producer = new_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        step = max(1, int(rate / 100))
        for i in range(0, len(rows), step):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            for p, b in batches_of(producer, rows[i:i + step]):
                await producer.send_batch(b, topic, partition=p)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


class Offsets:
    """Committed offsets of one group on one topic, summed over its partitions, read with one
    long-lived admin client (a new client per poll would load the broker and this process)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.group = group
        self.tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def __aenter__(self) -> Offsets:
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()

    async def total(self) -> int:
        try:
            offsets = await self.admin.list_consumer_group_offsets(self.group,
                                                                   partitions=self.tps)
        except Exception:
            return 0
        return sum(max(0, o.offset) for o in offsets.values())


async def timed_append(bootstrap: str, topic: str, group: str,
                       rows: list[tuple[int, bytes, bytes]],
                       backlog: list[subprocess.Popen[bytes]] | None,
                       on_start: Any) -> tuple[float, float, float]:
    """Append ``rows`` as fast as the producer sends and wait until ``group`` has committed
    them all.  The record batches are built before the clock starts, so the load generator's
    CPU in the measured interval is sending them and polling the group's offsets (every
    50 ms).  With ``backlog`` (the group's processes) they are stopped (SIGSTOP) while the
    rows are appended and the clock starts when they continue (SIGCONT): the input is a
    backlog, as after an outage, and appending it is outside the measured interval.
    ``on_start()`` is called when the clock starts.  Returns ``(seconds to the last
    commit, seconds appending, own CPU seconds)``."""
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        batches = batches_of(producer, rows)
        async with Offsets(bootstrap, group, topic) as offsets:
            for proc in backlog or ():
                proc.send_signal(signal.SIGSTOP)
            if backlog is None:
                on_start()
            cpu0, t0 = time.process_time(), time.perf_counter()
            for p, b in batches:
                await producer.send_batch(b, topic, partition=p)
            await producer.flush()
            append_s = time.perf_counter() - t0
            if backlog is not None:
                on_start()
                cpu0, t0 = time.process_time(), time.perf_counter()
                for proc in backlog:
                    proc.send_signal(signal.SIGCONT)
            while await offsets.total() < len(rows):
                await asyncio.sleep(0.05)
            return time.perf_counter() - t0, append_s, time.process_time() - cpu0
    finally:
        await producer.stop()


def write_config(path: Path, bootstrap: str, topic: str, alerts: str, group: str,
                 rules: Path, state: dict[str, str]) -> None:
    """A ``cep.toml`` for one run; ``state`` holds extra ``[state]`` keys (TOML values)."""
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ngroup_id = "{group}"\n'
        f'session_timeout = "6s"\n\n[sources.events]\nkind = "kafka"\ntopic = "{topic}"\n'
        f'partition_key = ["user"]\n\n'  # keyed by user (generate): the rules read it directly
        f'[sinks.alerts]\nkind = "kafka"\ntopic = "{alerts}"\n\n'
        f'[rules]\npaths = ["{rules}"]\n\n[state]\n'
        + "".join(f"{k} = {v}\n" for k, v in state.items()))


def start(config: Path, log: Path, engine: Path = ROOT) -> subprocess.Popen[bytes]:
    """``cep run --config`` of the project at ``engine`` (its ``.venv``, else this Python)."""
    venv = engine / ".venv" / "bin" / "python"
    python = str(venv) if venv.exists() else sys.executable
    return subprocess.Popen([python, "-m", "cep.cli", "run", "--config", str(config)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=engine)  # noqa: SIM115


def settled(logs: list[Path], n: int) -> bool:
    """Every process owns PARTITIONS / n partitions and has restored them."""
    owned = []
    for log in logs:
        found = re.findall(r"partitions \[([0-9, ]*)\] assigned", log.read_text())
        if not found:
            return False
        last = [int(x) for x in found[-1].split(",") if x.strip()]
        text = log.read_text()
        if not all(re.search(rf"partition {p}: (no checkpoint|restored)", text) for p in last):
            return False
        owned += last
    return sorted(owned) == list(range(PARTITIONS)) and all(
        len(re.findall(r"partitions \[([0-9, ]*)\] assigned", log.read_text())[-1].split(","))
        == PARTITIONS // n for log in logs)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``), 0 when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)


def throughput(bootstrap: str, rows: list[tuple[int, bytes, bytes]], n: int, rules: Path,
               work: Path, broker_pid: int | None, state: dict[str, str],
               backlog: bool = False, engine: Path = ROOT) -> dict[str, Any]:
    topic, alerts, group = uid("bench-in"), uid("bench-alerts"), uid("bench-g")
    asyncio.run(create_topics(bootstrap, [topic, alerts], PARTITIONS))
    config = work / f"{group}.toml"
    write_config(config, bootstrap, topic, alerts, group, rules, state)
    logs = [work / f"{group}-{i}.log" for i in range(n)]
    procs = [start(config, log, engine) for log in logs]
    try:
        deadline = time.monotonic() + 120
        while not settled(logs, n):
            if time.monotonic() > deadline:
                raise RuntimeError("the group did not settle: " + logs[0].read_text()[-2000:])
            time.sleep(0.1)
        cpu0: list[float] = []
        broker0 = [0.0]

        def on_start() -> None:
            cpu0[:] = [cpu_seconds(p.pid) for p in procs]
            broker0[0] = cpu_seconds(broker_pid) if broker_pid else 0.0

        elapsed, append_s, own_cpu = asyncio.run(timed_append(
            bootstrap, topic, group, rows, procs if backlog else None, on_start))
        cep_cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
        broker_cpu = cpu_seconds(broker_pid) - broker0[0] if broker_pid else None
    finally:
        stop(procs)
    n_alerts = asyncio.run(count_committed(bootstrap, alerts))
    return {"engine": str(engine), "processes": n, "backlog": backlog, "events": len(rows),
            "seconds": round(elapsed, 3),
            "events_per_s": round(len(rows) / elapsed), "append_events_per_s":
            round(len(rows) / append_s), "alerts": n_alerts,
            "cep_cpu_s": round(cep_cpu, 2),
            "broker_cpu_s": round(broker_cpu, 2) if broker_cpu is not None else None,
            "load_generator_cpu_s": round(own_cpu, 2),
            "cores": os.cpu_count()}


async def read_topic(bootstrap: str, topic: str, committed_only: bool) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed" if committed_only
                                else "read_uncommitted")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(msgs)
        return out
    finally:
        await consumer.stop()


async def count_committed(bootstrap: str, topic: str) -> int:
    return len(await read_topic(bootstrap, topic, True))


async def watch_alerts(bootstrap: str, topic: str, seen: dict[str, float],
                       stop_event: asyncio.Event) -> None:
    """Record the wall time (ms) at which each alert becomes visible to read_committed."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", auto_offset_reset="earliest",
                                fetch_max_wait_ms=10)
    await consumer.start()
    try:
        while not stop_event.is_set():
            for msgs in (await consumer.getmany(timeout_ms=50)).values():
                now = time.time() * 1000
                for m in msgs:
                    seen[orjson.loads(m.value)["alert_id"]] = now
    finally:
        await consumer.stop()


async def paced_run(bootstrap: str, topic: str, alerts: str, rows: list[Any], rate: float,
                    group: str, seen: dict[str, float]) -> None:
    stop_event = asyncio.Event()
    watcher = asyncio.create_task(watch_alerts(bootstrap, alerts, seen, stop_event))
    await append(bootstrap, topic, rows, rate)
    async with Offsets(bootstrap, group, topic) as offsets:
        while await offsets.total() < len(rows):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    stop_event.set()
    await watcher


def latency(bootstrap: str, rows: list[tuple[int, bytes, bytes]], rate: float, rules: Path,
            work: Path, state: dict[str, str], engine: Path = ROOT) -> dict[str, Any]:
    topic, alerts, group = uid("lat-in"), uid("lat-alerts"), uid("lat-g")
    asyncio.run(create_topics(bootstrap, [topic, alerts], PARTITIONS))
    config = work / f"{group}.toml"
    write_config(config, bootstrap, topic, alerts, group, rules, state)
    log = work / f"{group}.log"
    procs = [start(config, log, engine)]
    seen: dict[str, float] = {}
    try:
        while not settled([log], 1):
            time.sleep(0.1)
        asyncio.run(paced_run(bootstrap, topic, alerts, rows, rate, group, seen))
    finally:
        stop(procs)
    appended = {orjson.loads(m.value)["id"]: m.timestamp
                for m in asyncio.run(read_topic(bootstrap, topic, False))}
    to_append, to_visible = [], []
    for m in asyncio.run(read_topic(bootstrap, alerts, True)):
        rec = orjson.loads(m.value)
        last = max(appended[e["id"]] for evs in rec["match"].values() for e in evs)
        to_append.append(m.timestamp - last)
        if rec["alert_id"] in seen:
            to_visible.append(seen[rec["alert_id"]] - last)
    return {"rate": rate, "events": len(rows), "alerts": len(to_append),
            "append_to_append_ms": pct(to_append), "append_to_visible_ms": pct(to_visible)}


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 1), "p99": round(q[98], 1), "max": round(values[-1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get("CEP_KAFKA_BOOTSTRAP",
                                                          "127.0.0.1:9092"))
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--rules", type=Path, help="rule file (default: brute_force)")
    ap.add_argument("--processes", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--broker-pid", type=int, help="the broker's pid, to report its CPU time "
                    "(runtime/kafka/up.sh writes it to $CEP_KAFKA_HOME/kafka.pid)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=int, default=500_000,
                    help="events of unrecorded runs first (one per process count), so the "
                    "broker's JIT has compiled its hot paths before the measured runs (0: none)")
    ap.add_argument("--checkpoint-interval", default="100ms",
                    help="the processes' checkpoint_interval (cep's default: 100ms)")
    ap.add_argument("--checkpoint-records", type=int, default=10_000,
                    help="the processes' checkpoint_records (cep's default: 10,000)")
    ap.add_argument("--backlog", action="store_true",
                    help="throughput on a backlog: the processes are stopped (SIGSTOP) while "
                    "the events are appended and the clock starts when they continue, so the "
                    "broker's work of appending the input is outside the measured interval")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each process count this many times, alternating; the "
                    "median is reported")
    ap.add_argument("--engine", type=Path, action="append",
                    help="the project directory whose cep runs (its .venv; repeat the option "
                    "to compare versions: their runs alternate; default: this one)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "kafka_e2e.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cep-kafka-bench-"))
    rules = args.rules
    if rules is None:
        rules = work / "brute_force.cep"
        rules.write_text(BRUTE_FORCE)
    rows = generate(args.events, args.users, args.seed)
    state = {"checkpoint_interval": json.dumps(args.checkpoint_interval),
             "checkpoint_records": str(args.checkpoint_records)}
    results: dict[str, Any] = {"rules": str(rules), "state": state, "throughput": [],
                               "latency": None}
    engines = [e.resolve() for e in args.engine or [ROOT]]
    if args.warmup > 0:
        for n in args.processes:
            for engine in engines:
                r = throughput(args.bootstrap, rows[:args.warmup], n, rules.resolve(), work,
                               args.broker_pid, state, args.backlog, engine)
                print(f"warm-up, {engine.name}, {n} process(es): {r['events']:,} events, "
                      f"{r['events_per_s']:,} events/s", flush=True)
    for _ in range(args.repeat):
        for n in args.processes:
            for engine in engines:
                r = throughput(args.bootstrap, rows, n, rules.resolve(), work,
                               args.broker_pid, state, args.backlog, engine)
                results["throughput"].append(r)
                print(f"{engine.name}, {n} process(es): {r['events']:,} events in "
                      f"{r['seconds']:.2f} s = {r['events_per_s']:,} events/s (appended at "
                      f"{r['append_events_per_s']:,}/s), {r['alerts']:,} alerts; CPU: cep "
                      f"{r['cep_cpu_s']} s, broker {r['broker_cpu_s']} s, load generator "
                      f"{r['load_generator_cpu_s']} s on {r['cores']} cores", flush=True)
    for engine in engines:
        medians = {n: statistics.median(r["events_per_s"] for r in results["throughput"]
                                        if r["processes"] == n and r["engine"] == str(engine))
                   for n in args.processes}
        results.setdefault("median_events_per_s", {})[str(engine)] = medians
        one = medians[min(medians)]
        print(f"medians, {engine.name}: " + ", ".join(
            f"{n} process(es) {v:,.0f} events/s ({v / one:.2f}×)" for n, v in medians.items()),
            flush=True)
    if args.rate > 0:
        paced = rows[: int(args.rate * args.seconds)]
        r = latency(args.bootstrap, paced, args.rate, rules.resolve(), work, state, engines[0])
        results["latency"] = r
        print(f"latency at {args.rate:,.0f} events/s over {len(paced):,} events, "
              f"{r['alerts']:,} alerts: append→append {r['append_to_append_ms']}, "
              f"append→visible (read_committed) {r['append_to_visible_ms']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
