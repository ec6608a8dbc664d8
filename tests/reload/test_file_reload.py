"""Hot reload of a running ``cep run --follow`` (a child process fed at a steady rate): edits
take effect within two seconds, broken edits change nothing, state follows rule versions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reload import rules as R
from tests.reload.runner import CepRun, Feeder, json_lines, wait_for, write_rule

LIMIT_S = 2.0


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    rules = tmp_path / "rules"
    rules.mkdir()
    inp, out = tmp_path / "in.jsonl", tmp_path / "alerts.jsonl"
    inp.touch()
    yield rules, inp, out


def start(rules: Path, inp: Path, out: Path, tmp: Path) -> CepRun:
    return CepRun(["--rules", str(rules), "--input", str(inp), "--follow", "--output",
                   str(out)], tmp / "cep.log")


def alerts(out: Path, rule: str) -> list[dict]:
    return [a for a in json_lines(out) if a["rule"] == rule]


def test_edit_add_break_fix_and_delete_rules_under_a_running_engine(
    setup: tuple[Path, Path, Path], tmp_path: Path,
) -> None:
    rules, inp, out = setup
    write_rule(rules / "big.cep", R.big(150))
    write_rule(rules / "pair.cep", R.pair())
    feeder = Feeder(inp, rate=500).start()
    cep = start(rules, inp, out, tmp_path)
    try:
        v1 = wait_for(lambda: alerts(out, "big"), 10, "the first alert")[0]["rule_version"]

        # 1. edit a threshold: ticks of 51..150 alert from now on, under the new version
        t0 = write_rule(rules / "big.cep", R.big(50))
        wait_for(lambda: cep.versions()["big"] != v1, LIMIT_S, "the new version in /status")
        edit_s = time.monotonic() - t0
        new = wait_for(lambda: [a for a in alerts(out, "big") if a["rule_version"] != v1
                                and a["data"]["amount"] <= 150], LIMIT_S, "the edit")
        took = new[0]
        assert 50 < took["data"]["amount"] <= 150
        v2 = took["rule_version"]
        assert cep.versions()["big"] == v2
        alert_s = time.monotonic() - t0

        # 2. add a rule file
        write_rule(rules / "tiny.cep", R.tiny())
        wait_for(lambda: alerts(out, "tiny"), LIMIT_S, "the added rule to alert")
        assert set(cep.versions()) == {"big", "pair", "tiny"}

        # 3. break a rule file: nothing changes, the error is shown with its location
        write_rule(rules / "pair.cep", R.BROKEN_PAIR)
        status = wait_for(lambda: (s := cep.status())["reload"]["errors"] and s, LIMIT_S,
                          "the error in /status")
        (err,) = status["reload"]["errors"]
        assert err["file"].endswith("pair.cep") and (err["line"], err["col"]) == R.BROKEN_AT
        assert err["text"].startswith(f"{err['file']}:5:27: error: ")
        assert status["reload"]["last"]["ok"] is False
        assert {r["name"]: r["version"] for r in status["rules"]}["big"] == v2
        assert "cep_rules_last_reload_successful 0.0" in cep.metrics()
        before = len(alerts(out, "big"))
        wait_for(lambda: len(alerts(out, "big")) > before + 20, 3, "alerts after the error")
        assert {a["rule_version"] for a in alerts(out, "big")[before:]} == {v2}
        logged = [r for r in cep.records() if r.get("event") == "rule_error"]
        assert (logged[-1]["file"], logged[-1]["line"], logged[-1]["col"]) == (
            err["file"], 5, 27)

        # 4. the next good edit is picked up normally
        pair_v = cep.versions()["pair"]
        write_rule(rules / "pair.cep", R.pair(within="20s"))
        wait_for(lambda: cep.versions()["pair"] != pair_v, LIMIT_S, "the fixed rule")
        assert cep.status()["reload"]["errors"] == []

        # 5. delete a rule file: the rule stops
        (rules / "tiny.cep").unlink()
        wait_for(lambda: "tiny" not in cep.versions(), LIMIT_S, "the deleted rule to go")
        gone = len(alerts(out, "tiny"))
        n_big = len(alerts(out, "big"))
        wait_for(lambda: len(alerts(out, "big")) > n_big + 30, 3, "more traffic")
        assert len(alerts(out, "tiny")) == gone
        print(f"\nedit → new version in /status {edit_s * 1000:.0f} ms, "
              f"→ its first alert {alert_s * 1000:.0f} ms")
    finally:
        feeder.stop()
        assert cep.terminate() == 0, cep.log()[-3000:]


def test_partial_matches_survive_reloads_and_a_changed_rule_drains(
    setup: tuple[Path, Path, Path], tmp_path: Path,
) -> None:
    rules, inp, out = setup
    write_rule(rules / "pair.cep", R.pair())
    write_rule(rules / "win.cep", R.win("low"))
    feeder = Feeder(inp, rate=200).start()
    cep = start(rules, inp, out, tmp_path)
    try:
        feeder.inject(user="p1", kind="start")
        feeder.inject(user="w1", kind="open")
        feeder.inject(user="w2", kind="open")

        def partials() -> dict[str, int]:
            return {r["name"]: r["partial_matches"] for r in cep.status()["rules"]}

        wait_for(lambda: partials() == {"pair": 1, "win": 2}, 5, "three partial matches")
        versions = cep.versions()
        write_rule(rules / "win.cep", R.win("medium", edition=2))

        def draining() -> list[dict]:
            return cep.status()["draining"]

        (d,) = wait_for(draining, LIMIT_S, "the old version to drain")
        assert (d["rule"], d["version"], d["partial_matches"]) == ("win", versions["win"], 2)
        new_win = cep.versions()["win"]
        assert new_win != versions["win"] and cep.versions()["pair"] == versions["pair"]

        feeder.inject(user="p1", kind="end")     # the unchanged rule's in-flight match
        feeder.inject(user="w1", kind="close")   # completed by the old version
        feeder.inject(user="w3", kind="open")    # a new match: the new version only
        feeder.inject(user="w3", kind="close")
        wait_for(lambda: len(alerts(out, "win")) >= 2 and alerts(out, "pair"), LIMIT_S,
                 "the alerts")
        (p,) = alerts(out, "pair")
        assert p["rule_version"] == versions["pair"] and p["key"] == {"user": "p1"}
        # w2 times out in the old version once its 1.5 s window has passed; then it is gone
        wait_for(lambda: not draining(), 4, "the old version to disappear from /status")
        got = sorted((a["key"]["user"], a["rule_version"], bool(a.get("timed_out")),
                      a["severity"]) for a in alerts(out, "win"))
        assert got == [("w1", versions["win"], False, "low"),
                       ("w2", versions["win"], True, "low"),
                       ("w3", new_win, False, "medium")]
        info = cep.metrics()
        assert f'cep_rule_info{{rule="win",state="active",version="{new_win}"}} 1.0' in info
        assert "draining" not in info.split("cep_rule_info", 1)[1].split("# HELP", 1)[0]
    finally:
        feeder.stop()
        assert cep.terminate() == 0, cep.log()[-3000:]
