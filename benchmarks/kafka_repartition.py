#!/usr/bin/env python3
"""Benchmark: Kafka mode with one repartition hop against the same run without it.

The input of ``kafka_e2e.py`` (``gen_events.py``, keyed by ``user`` into a 4-partition topic
whose source declares ``partition_key = ["user"]``) is consumed by ``cep run --config``
processes running one of two rule sets, measured side by side:

* ``direct`` — ``brute_force`` (``key by user``) alone: co-partitioned, no repartition topic;
* ``mixed`` — ``brute_force`` plus a rule keyed by ``ip``, served through
  ``<group>.repartition.ip``: ``--shuffled logins`` (the default; a failed then a successful
  login from one address, header ``where type == "login"``: about 20 % of the events are
  shipped), ``spray`` (header ``where type == "login" and not ok``: 2.6 %) or ``all`` (no
  header filter: every event is shipped, the hop's worst case).  A source task ships what a
  rule's header ``where`` passes; it cannot drop events the first stage refuses, since with
  strict contiguity (``next``, ``consecutive``) any event of the key can break a match.

As in ``kafka_e2e.py --backlog``: the processes start on the empty topic and wait until the
group has settled, are stopped (SIGSTOP) while the events are appended, and the clock starts
when they continue.  It stops when the group has committed the whole source topic *and* the
whole repartition topic (each partition's committed offset at its end minus the last
transaction's commit marker), i.e. when the shuffled rule's last alerts are committed too.
events/s = events ÷ that time; CPU is ``cep``'s user + system time over it, per million events.
Variants and process counts alternate (``--repeat``); medians are compared.

Usage (a broker must be running; ``runtime/kafka/up.sh --port 19092`` starts one)::

    python benchmarks/kafka_repartition.py --bootstrap 127.0.0.1:19092 --events 1000000 \\
        --processes 1 2 --repeat 3 --broker-pid $(cat /tmp/cep-kafka-19092/kafka.pid) \\
        [--engine /path/to/other/checkout --engine .]

``--engine DIR`` (repeated) runs the ``cep`` of each project directory given, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_e2e import (  # noqa: E402
    BRUTE_FORCE,
    PARTITIONS,
    ROOT,
    Offsets,
    batches_of,
    count_committed,
    cpu_seconds,
    create_topics,
    generate,
    new_producer,
    start,
    stop,
    uid,
)

SHUFFLED = {
    # as the library writes them: a header `where` (the source task ships only what it passes)
    "spray": """\
rule spray_by_ip
  where type == "login" and not ok
  key by ip
  pattern
    begin fail
    next  more  times 4 consecutive
  within 2m
end
""",
    "logins": """\
rule fail_then_ok_by_ip
  where type == "login"
  key by ip
  pattern
    begin fail  where not ok
    followed by good where ok
  within 30s
end
""",
    # no header filter: every event is shipped (the hop's worst case)
    "all": """\
rule payments_by_ip
  key by ip
  pattern
    begin first where amount >= 0
    next  big   where type == "payment" and amount > 200  times 3
  within 5m
end
""",
}


def write_config(path: Path, bootstrap: str, topic: str, alerts: str, group: str,
                 rules: list[Path]) -> None:
    paths = ", ".join(f'"{r}"' for r in rules)
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ngroup_id = "{group}"\n'
        f'session_timeout = "6s"\n\n[sources.events]\nkind = "kafka"\ntopic = "{topic}"\n'
        f'partition_key = ["user"]\n\n[sinks.alerts]\nkind = "kafka"\ntopic = "{alerts}"\n\n'
        f'[rules]\npaths = [{paths}]\n')


def settled(logs: list[Path], n: int, shuffles: list[str]) -> bool:
    """Every process owns PARTITIONS / n partitions of the source (and of each repartition
    topic) and has restored them."""
    owned: dict[str, list[int]] = {}
    for log in logs:
        text = log.read_text()
        found = re.findall(r"partitions (.*) assigned: restoring", text)
        if not found:
            return False
        for part in found[-1].split("; "):  # "[0, 1]" (source) or "T [0, 1]" (shuffle)
            m = re.fullmatch(r"(?:(\S+) )?\[([\d, ]*)\]", part)
            if m is None:
                return False
            stage = m.group(1) or ""
            nums = [int(x) for x in m.group(2).split(",") if x.strip()]
            if len(nums) != PARTITIONS // n:
                return False
            prefix = f"{stage} partition" if stage else "partition"
            if not all(re.search(rf"cep.kafka: {re.escape(prefix)} {p}: "
                                 r"(no checkpoint|restored)", text) for p in nums):
                return False
            owned.setdefault(stage, []).extend(nums)
    return all(sorted(owned.get(s, [])) == list(range(PARTITIONS)) for s in ["", *shuffles])


async def after_last_record(consumer: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    """Per partition, the offset after its last committed record: where the group's
    committed offset ends (the commit markers of the source tasks' last transactions, one per
    producer, follow it).  The topic is final once the source is committed."""
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    end = await consumer.end_offsets(tps)
    consumer.assign(tps)
    last = {tp.partition: 0 for tp in tps}
    for tp in tps:
        consumer.seek(tp, max(0, end[tp] - 64))
    while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
        for tp, msgs in (await consumer.getmany(timeout_ms=200)).items():
            if msgs:
                last[tp.partition] = msgs[-1].offset + 1
    return last


async def timed_run(bootstrap: str, topic: str, group: str, shuffles: list[str],
                    rows: list[tuple[int, bytes, bytes]], procs: list[Any],
                    on_start: Any) -> float:
    """Append ``rows`` while the processes are stopped; start the clock when they continue;
    return the seconds until the group committed the source and every repartition topic."""
    producer: AIOKafkaProducer = new_producer(bootstrap)
    await producer.start()
    ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                            enable_auto_commit=False)
    await ends.start()
    try:
        batches = batches_of(producer, rows)
        source = Offsets(bootstrap, group, topic)
        reps = [Offsets(bootstrap, group, t) for t in shuffles]
        async with source:
            for o in reps:
                await o.__aenter__()
            try:
                for proc in procs:
                    proc.send_signal(signal.SIGSTOP)
                for p, b in batches:
                    await producer.send_batch(b, topic, partition=p)
                await producer.flush()
                on_start()
                t0 = time.perf_counter()
                for proc in procs:
                    proc.send_signal(signal.SIGCONT)
                while await source.total() < len(rows):
                    await asyncio.sleep(0.05)
                for o, t in zip(reps, shuffles, strict=True):
                    want = sum((await after_last_record(ends, t)).values())
                    while await o.total() < want:
                        await asyncio.sleep(0.05)
                return time.perf_counter() - t0
            finally:
                for o in reps:
                    await o.__aexit__()
    finally:
        await ends.stop()
        await producer.stop()


def measure(bootstrap: str, rows: list[tuple[int, bytes, bytes]], n: int, variant: str,
            rules: list[Path], work: Path, broker_pid: int | None, engine: Path = ROOT
            ) -> dict[str, Any]:
    topic, alerts, group = uid("rep-in"), uid("rep-alerts"), uid("rep-g")
    asyncio.run(create_topics(bootstrap, [topic, alerts], PARTITIONS))
    shuffles = [f"{group}.repartition.ip"] if variant == "mixed" else []
    config = work / f"{group}.toml"
    write_config(config, bootstrap, topic, alerts, group, rules)
    logs = [work / f"{group}-{i}.log" for i in range(n)]
    procs = [start(config, log, engine) for log in logs]
    try:
        deadline = time.monotonic() + 120
        while not settled(logs, n, shuffles):
            if time.monotonic() > deadline:
                raise RuntimeError("the group did not settle: " + logs[0].read_text()[-2000:])
            time.sleep(0.1)
        cpu0: list[float] = []
        broker0 = [0.0]

        def on_start() -> None:
            cpu0[:] = [cpu_seconds(p.pid) for p in procs]
            broker0[0] = cpu_seconds(broker_pid) if broker_pid else 0.0

        elapsed = asyncio.run(timed_run(bootstrap, topic, group, shuffles, rows, procs,
                                        on_start))
        cep_cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
        broker_cpu = cpu_seconds(broker_pid) - broker0[0] if broker_pid else None
    finally:
        stop(procs)
    shipped = asyncio.run(count_committed(bootstrap, shuffles[0])) if shuffles else 0
    per_m = 1e6 / len(rows)
    return {"engine": str(engine), "variant": variant, "processes": n, "events": len(rows),
            "seconds": round(elapsed, 3), "events_per_s": round(len(rows) / elapsed),
            "events_per_s_per_process": round(len(rows) / elapsed / n),
            "cep_cpu_s": round(cep_cpu, 2), "cep_cpu_s_per_million": round(cep_cpu * per_m, 2),
            "broker_cpu_s": round(broker_cpu, 2) if broker_cpu is not None else None,
            "repartition_records": shipped,
            "alerts": asyncio.run(count_committed(bootstrap, alerts))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--shuffled", choices=sorted(SHUFFLED), default="logins",
                    help="the rule keyed by ip in the mixed variant")
    ap.add_argument("--processes", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=300_000,
                    help="events of one unrecorded run per variant first (0: none)")
    ap.add_argument("--broker-pid", type=int)
    ap.add_argument("--engine", type=Path, action="append",
                    help="the project directory whose cep runs (its .venv; repeat the option "
                    "to compare versions: their runs alternate; default: this one)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                    "kafka_repartition.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cep-kafka-rep-"))
    direct = work / "brute_force.cep"
    direct.write_text(BRUTE_FORCE)
    shuffled = work / f"{args.shuffled}.cep"
    shuffled.write_text(SHUFFLED[args.shuffled])
    variants = {"direct": [direct], "mixed": [direct, shuffled]}
    rows = generate(args.events, args.users, args.seed)
    engines = [e.resolve() for e in args.engine or [ROOT]]
    if args.warmup > 0:
        for v, rules in variants.items():
            r = measure(args.bootstrap, rows[:args.warmup], 1, v, rules, work, args.broker_pid)
            print(f"warm-up {v}: {r['events_per_s']:,} events/s", flush=True)
    runs: list[dict[str, Any]] = []
    medians: dict[str, Any] = {}
    for _ in range(args.repeat):
        for n, engine, (v, rules) in ((n, e, vr) for n in args.processes for e in engines
                                      for vr in variants.items()):
            r = measure(args.bootstrap, rows, n, v, rules, work, args.broker_pid, engine)
            runs.append(r)
            print(f"{engine.name}, {v}, {n} process(es): {r['events_per_s']:,} events/s "
                  f"({r['events_per_s_per_process']:,} per process), cep CPU "
                  f"{r['cep_cpu_s']} s ({r['cep_cpu_s_per_million']} s per M), broker "
                  f"{r['broker_cpu_s']} s, {r['repartition_records']:,} repartition "
                  f"records, {r['alerts']:,} alerts", flush=True)
    for engine in engines:
        summary = _summary([r for r in runs if r["engine"] == str(engine)], args.processes,
                           list(variants), engine.name)
        if len(engines) > 1:
            summary = {str(engine): summary}
        medians.update(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": sys.argv, "shuffled": args.shuffled,
                                    "runs": runs, "medians": medians}, indent=2) + "\n")


def _summary(runs: list[dict[str, Any]], processes: list[int], variants: list[str],
             label: str) -> dict[str, Any]:
    """The medians of one engine's runs (printed as well)."""

    def med(v: str, n: int, k: str) -> float:
        return statistics.median(r[k] for r in runs if r["variant"] == v and r["processes"] == n)

    summary: dict[str, Any] = {}
    for n in processes:
        d, m = med("direct", n, "events_per_s"), med("mixed", n, "events_per_s")
        summary[f"{n}p"] = {"direct_events_per_s": d, "mixed_events_per_s": m,
                            "mixed_over_direct": round(m / d, 3),
                            "direct_cpu_s_per_million": med("direct", n, "cep_cpu_s_per_million"),
                            "mixed_cpu_s_per_million": med("mixed", n, "cep_cpu_s_per_million")}
        print(f"medians, {label}, {n} process(es): direct {d:,.0f}, mixed {m:,.0f} events/s "
              f"({m / d:.0%}); CPU per M: direct {summary[f'{n}p']['direct_cpu_s_per_million']}"
              f" s, mixed {summary[f'{n}p']['mixed_cpu_s_per_million']} s", flush=True)
    if 1 in processes and 2 in processes:
        for v in variants:
            ratio = med(v, 2, "cep_cpu_s_per_million") / med(v, 1, "cep_cpu_s_per_million")
            summary[f"{v}_cpu_2p_over_1p"] = round(ratio, 3)
            print(f"{label}, {v}: CPU per M, 2 processes ÷ 1 process = {ratio:.2f}", flush=True)
    return summary


if __name__ == "__main__":
    main()
