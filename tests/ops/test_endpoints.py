"""The operations endpoints of a running ``cep run --follow``: /metrics parses as Prometheus
text and its counters match what the run wrote; /healthz, /status, POST /-/reload, SIGHUP and
JSON logs."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.reload import rules as R
from tests.reload.runner import CepRun, json_lines, wait_for, write_rule

T = 1_767_225_600_000


def append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\n".join(lines) + b"\n")


def tick(i: int, user: str = "") -> bytes:
    return orjson.dumps({"ts": T + i * 10, "user": user or f"u{i % 7}", "kind": "tick",
                         "amount": i * 37 % 200, "n": i})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_status_and_reload_endpoints_describe_the_run(tmp_path: Path) -> None:
    rules, inp = tmp_path / "rules", tmp_path / "in.jsonl"
    out, late, dead = (tmp_path / n for n in ("alerts.jsonl", "late.jsonl", "dead.jsonl"))
    rules.mkdir()
    write_rule(rules / "big.cep", R.big(100))
    write_rule(rules / "pair.cep", R.pair())
    inp.touch()
    cep = CepRun(["--rules", str(rules), "--input", str(inp), "--follow", "--output", str(out),
                  "--late", str(late), "--dead-letter", str(dead),
                  "--max-partial-matches-per-key", "2"], tmp_path / "cep.log")
    try:
        assert cep.get("/healthz") == (200, b"ok\n")
        assert cep.get("/nope")[0] == 404
        assert cep.get("/-/reload")[0] == 405

        batch = [tick(i) for i in range(300)]
        batch[100:100] = [b"{not json", b"[1, 2]", orjson.dumps({"user": "x"})]  # dead
        batch[200:200] = [orjson.dumps({"ts": T, "user": "late", "kind": "tick"})] * 2  # late
        starts = [orjson.dumps({"ts": T + 3000 + k, "user": "e", "kind": "start"})
                  for k in range(3)]  # three partial matches for one key: one is evicted
        append(inp, batch + starts)
        valid = 300 + 2 + 3
        wait_for(lambda: cep.status()["events_in"].get("input") == valid, 5, "the first batch")

        # a broken reload (422, counted as failed), then a good one through SIGHUP
        write_rule(rules / "big.cep", R.big(100).replace("amount > 100", "amount >"))
        code, doc = cep.post("/-/reload")
        assert code == 422 and doc["ok"] is False and doc["report"] is None
        (err,) = doc["errors"]
        assert err["file"].endswith("big.cep") and (err["line"], err["col"]) == (7, 8)
        write_rule(rules / "big.cep", R.big(60))
        wait_for(lambda: cep.status()["reload"]["last"]["ok"], 2, "the fixed rule")
        cep.signal(signal.SIGHUP)
        wait_for(lambda: any(r["reason"] == "SIGHUP" for r in cep.reloads()), 2, "SIGHUP")
        code, doc = cep.post("/-/reload")
        assert code == 200 and doc["report"]["unchanged"] == ["big", "pair"]

        append(inp, [tick(i) for i in range(400, 600)])
        valid += 200
        wait_for(lambda: cep.status()["events_in"].get("input") == valid, 5, "the second batch")
        wait_for(lambda: len(json_lines(out)) == sum(
            v for (n, _), v in samples(cep.metrics()).items() if n == "cep_alerts_total"),
            3, "the alerts file to be flushed")

        m = samples(cep.metrics())
        alerts = json_lines(out)
        by_rule = Counter((a["rule"], a["severity"]) for a in alerts)
        assert {k[1]: v for k, v in m.items() if k[0] == "cep_alerts_total"} == {
            (("rule", r), ("severity", s)): n for (r, s), n in by_rule.items()}
        assert m[("cep_events_in_total", (("source", "input"),))] == valid
        assert m[("cep_late_events_total", (("source", "input"),))] == len(json_lines(late)) == 2
        dead_by = Counter(d["reason"] for d in json_lines(dead))
        assert sum(dead_by.values()) == 3
        assert {dict(k[1])["reason"]: v for k, v in m.items()
                if k[0] == "cep_dead_letters_total"} == dict(dead_by)
        reloads = cep.reloads()
        assert m[("cep_reloads_total", (("result", "ok"),))] == sum(r["ok"] for r in reloads)
        assert m[("cep_reloads_total", (("result", "failed"),))] == 1
        assert m[("cep_rules_last_reload_successful", ())] == 1
        assert m[("cep_partial_matches", (("rule", "pair"),))] == 2
        assert m[("cep_keys", (("rule", "pair"),))] == 1
        assert m[("cep_evictions_total", (("rule", "pair"),))] == 1
        status = cep.status()
        versions = {r["name"]: r["version"] for r in status["rules"]}
        for name, version in versions.items():
            key = ("cep_rule_info", (("rule", name), ("state", "active"), ("version", version)))
            assert m[key] == 1
        assert m[("cep_watermark_ms", (("input", "input"),))] == T + 599 * 10 - 1
        assert status["watermarks"] == {"input": T + 599 * 10 - 1}
        assert m[("cep_processing_latency_seconds_count", ())] == valid // 256
        assert status["rules"][0]["file"].endswith("big.cep")
        assert status["reload"]["last_success"]["ok"] is True
    finally:
        rc = cep.terminate()
    assert rc == 0, cep.log()[-3000:]
    lines = cep.log().splitlines()
    assert all(orjson.loads(line)["level"] for line in lines if line.startswith("{"))
    assert [line for line in lines if not line.startswith("{")] == [
        line for line in lines if line.startswith("cep: ")]  # only the run's summary
    assert any(r.get("event") == "rule_error" and r["line"] == 7 for r in cep.records())
