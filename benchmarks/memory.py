#!/usr/bin/env python3
"""Memory: resident set size per key holding one live partial match, and RSS over a long run
whose keys churn (windows expire, keys are dropped).

Per-key size: ``--keys`` distinct users each send one event that starts a partial match of

    rule held
      key by user
      pattern
        begin a where type == "login" and not ok
        followed by b where type == "login" and ok
      within 1h

and nothing else, so after the last event every key holds exactly one live partial match
(and its event).  Events have the shape of ``shared/peers/gen_events.py`` (7 fields, decoded
by orjson from JSON text) and go through :meth:`CepOperator.on_batch` as in file mode.  The
figure is (RSS after − RSS before) ÷ keys, RSS from ``/proc/self/statm``.  The share of keys
whose event is held compactly (:attr:`CepOperator.hold_after`; the keys of the last one or
two rounds are not yet) is reported as ``held_share``.

Churn: an endless stream of such events, each from a new user, 1 ms of event time apart,
with a window of ``--churn-window`` (default 10 s): about window/1 ms keys are alive at any
time and every other key has timed out and been dropped.  It runs for ``--duration``
seconds of wall time (default 60; the specification's run is 600) and samples RSS every
``--sample`` seconds.  Flat means: the RSS of the second half stays within a few percent.

Usage::

    python benchmarks/memory.py [--keys 200000] [--duration 60] [--skip-churn|--skip-keys]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent

RULE = """rule held
  key by user
  pattern
    begin a where type == "login" and not ok
    followed by b where type == "login" and ok
  within {window}
end
"""

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def lines(start: int, n: int, t0: int) -> Iterator[bytes]:
    """JSON text of events ``start`` … ``start + n - 1``: user ``u<i>``, a failed login,
    1 ms apart."""
    for i in range(start, start + n):
        yield (b'{"id": %d, "ts": %d, "user": "u%d", "type": "login", "ok": false, '
               b'"ip": "10.%d.%d.%d", "amount": 0}' % (i, t0 + i, i, i >> 16 & 255,
                                                       i >> 8 & 255, i & 255))


def operator(window: str) -> Any:
    """A file-mode operator with the one rule."""
    import tempfile

    from cep.app.rules import load_rule_set
    from cep.operator.cep_operator import CepOperator

    path = Path(tempfile.mkdtemp(prefix="cep-mem-")) / "held.cep"
    path.write_text(RULE.format(window=window))
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return CepOperator(rs.rules, lambda sink, rec: None)


def _odd(d: dict[str, Any], line: int) -> int | None:
    raise AssertionError("integer ts expected")


def feed(op: Any, start: int, n: int, t0: int, state: list[int], batch: int = 512) -> None:
    """Decode and feed ``n`` events in batches, as file mode does."""
    seq, off = state
    i = start
    end = start + n
    while i < end:
        k = min(batch, end - i)
        objs = orjson.loads(b"[" + b",".join(lines(i, k, t0)) + b"]")
        seq, off = op.on_batch(objs, "input", "ts", seq, off, _odd)
        i += k
    state[0], state[1] = seq, off


def per_key(keys: int) -> dict[str, Any]:
    """RSS per key holding one live partial match."""
    op = operator("1h")
    state = [0, 0]
    feed(op, 0, 1000, 1_700_000_000_000, state)  # warm up: code paths, first allocations
    gc.collect()
    before = rss()
    feed(op, 1000, keys, 1_700_000_000_000, state)
    gc.collect()
    after = rss()
    rs = op.rules[0]
    live = rs.partial_matches()
    assert len(rs.keys) == keys + 1000 and live == keys + 1000, (len(rs.keys), live)
    from cep.event import HeldEvent

    held = sum(1 for _, ks in rs.key_states() for cs in ks.a
               if cs.node is not None and type(cs.node.event) is HeldEvent)
    del op, rs
    gc.collect()
    # the same events decoded and merely kept in a list: what the event itself costs
    base = rss()
    kept: list[Any] = []
    for i in range(0, keys, 4096):
        k = min(4096, keys - i)
        kept += orjson.loads(b"[" + b",".join(lines(10**8 + i, k, 1_700_000_000_000)) + b"]")
    data_bytes = (rss() - base) / keys
    per_key = (after - before) / keys
    return {"keys": keys, "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
            "bytes_per_key": per_key, "decoded_event_bytes": data_bytes,
            "engine_bytes_per_key": per_key - data_bytes,
            "held_share": held / (keys + 1000),
            "projected_1m_keys_gb": per_key * 1e6 / 2**30}


def churn(duration: float, window: str, sample: float) -> dict[str, Any]:
    """RSS over ``duration`` seconds of keys that start, time out and are dropped."""
    op = operator(window)
    state = [0, 0]
    samples: list[tuple[float, float, int, int]] = []
    t_start = time.perf_counter()
    next_sample = 0.0
    i = 0
    step = 20_000
    while True:
        now = time.perf_counter() - t_start
        if now >= next_sample:
            rs = op.rules[0]
            samples.append((round(now, 1), rss() / 2**20, len(rs.keys), state[0]))
            next_sample += sample
        if now >= duration:
            break
        feed(op, i, step, 1_700_000_000_000, state)
        i += step
    half = [s[1] for s in samples if s[0] >= duration / 2]
    lo, hi = min(half), max(half)
    return {"duration_s": duration, "window": window, "events": state[0],
            "events_per_s": state[0] / (time.perf_counter() - t_start),
            "live_keys_at_end": len(op.rules[0].keys),
            "timeouts": op.rules[0].timeouts,
            "rss_mb_first_sample_after_warmup": samples[min(2, len(samples) - 1)][1],
            "rss_mb_second_half_min": lo, "rss_mb_second_half_max": hi,
            "second_half_growth": (hi - lo) / lo,
            "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--duration", type=float, default=60.0,
                    help="seconds of the churn run (the specification's run is 600)")
    ap.add_argument("--churn-window", default="10s")
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--skip-keys", action="store_true")
    ap.add_argument("--skip-churn", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory.json"))
    args = ap.parse_args()
    out: dict[str, Any] = {}
    if not args.skip_keys:
        out["per_key"] = per_key(args.keys)
        pk = out["per_key"]
        print(f"{pk['keys']:,} keys with one live partial match each: "
              f"{pk['bytes_per_key']:,.0f} bytes of RSS per key (for comparison, the decoded "
              f"event alone: {pk['decoded_event_bytes']:,.0f}; events held compactly by "
              f"{pk['held_share']:.0%} of the keys; 1,000,000 keys → "
              f"{pk['projected_1m_keys_gb']:.2f} GiB)", flush=True)
    if not args.skip_churn:
        out["churn"] = c = churn(args.duration, args.churn_window, args.sample)
        print(f"churn {c['duration_s']:.0f} s: {c['events']:,} events "
              f"({c['events_per_s']:,.0f}/s), {c['timeouts']:,} partial matches timed out, "
              f"{c['live_keys_at_end']:,} keys alive at the end; RSS second half "
              f"{c['rss_mb_second_half_min']:.1f}–{c['rss_mb_second_half_max']:.1f} MB "
              f"({c['second_half_growth']:+.1%})", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
