"""Lists and tables under reload: an edit of a list file changes no rule version, keeps every
partial match, and applies from the reload on (to the kept partial matches too); a broken
list file fails the whole reload and the running rules keep the lists they had; a running
``cep run --follow`` picks a list edit up by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cep.app.rule_compiler import compile_with_deadline
from cep.event import Event
from cep.operator.cep_operator import CepOperator
from tests.reload.runner import CepRun, Feeder, json_lines, wait_for, write_rule

RULE = ('list watched from "lists/watched.txt"\n'
        'table tier from "lists/tier.csv" key user\n'
        "rule watched_pair\n  key by user\n  pattern\n"
        "    begin a where kind == \"start\" and user in watched\n"
        "    followed by b where kind == \"end\" and user in watched\n"
        "  within 1h\n  emit { user: a.user, tier: tier[b.user].tier }\nend\n")


def setup_rules(root: Path, watched: list[str], tiers: dict[str, str]) -> Path:
    (root / "lists").mkdir(parents=True, exist_ok=True)
    write_rule(root / "lists" / "watched.txt", "\n".join(watched) + "\n")
    write_rule(root / "lists" / "tier.csv",
               "user,tier\n" + "".join(f"{u},{t}\n" for u, t in tiers.items()))
    write_rule(root / "r.cep", RULE)
    return root / "r.cep"


class Run:
    def __init__(self, rules: list[Any]) -> None:
        self.out: list[dict[str, Any]] = []
        self.op = CepOperator(rules, lambda sink, rec: self.out.append(rec))
        self.seq = 0

    def feed(self, user: str, kind: str) -> None:
        self.seq += 1
        self.op.on_event(Event(self.seq * 1000, self.seq, {"user": user, "kind": kind},
                               "input", self.seq))


def test_a_list_edit_keeps_version_and_partial_matches_and_applies_at_once(
        tmp_path: Path) -> None:
    path = setup_rules(tmp_path, ["alice", "bob"], {"alice": "gold"})
    first = compile_with_deadline([str(path)])
    assert first.ok, first.diagnostics
    (v1,) = first.rules
    run = Run(first.rules)
    run.feed("alice", "start")
    run.feed("bob", "start")
    run.feed("carol", "start")  # not watched: no partial match

    # alice leaves the list, carol joins it, alice's tier changes
    setup_rules(tmp_path, ["bob", "carol"], {"alice": "silver", "bob": "bronze"})
    second = compile_with_deadline([str(path)], running={v1.name: v1})
    assert second.ok, second.diagnostics
    (v2,) = second.rules
    assert v2.version == v1.version
    report = run.op.reload(second.rules)
    assert report.unchanged == ["watched_pair"] and report.changed == []
    assert report.partial_kept == 2 and report.partial_dropped == 0

    run.feed("alice", "end")  # alice's partial match is kept, but she is no longer watched
    run.feed("bob", "end")    # completes with the new tier
    run.feed("carol", "end")  # carol started before she was watched: nothing
    run.feed("carol", "start")
    run.feed("carol", "end")
    got = [(a["data"]["user"], a["data"]["tier"], a["rule_version"]) for a in run.out
           if "rule" in a]
    assert got == [("bob", "bronze", v1.version), ("carol", None, v1.version)]


def test_a_broken_list_fails_the_reload_and_the_old_lists_stay(tmp_path: Path) -> None:
    path = setup_rules(tmp_path, ["alice"], {})
    first = compile_with_deadline([str(path)])
    (v1,) = first.rules
    run = Run(first.rules)
    write_rule(tmp_path / "lists" / "tier.csv", "user,tier\nalice,gold\nalice,silver\n")
    broken = compile_with_deadline([str(path)], running={v1.name: v1})
    assert not broken.ok and broken.rules == []
    assert any("tier.csv" in d.file and d.span.line == 3 for d in broken.diagnostics)
    run.feed("alice", "start")
    run.feed("alice", "end")
    assert [a["data"] for a in run.out if "rule" in a] == [{"user": "alice", "tier": None}]


def test_a_running_engine_follows_a_list_edit(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    setup_rules(rules, ["alice"], {"alice": "gold"})
    inp, out = tmp_path / "in.jsonl", tmp_path / "alerts.jsonl"
    inp.touch()
    feeder = Feeder(inp, rate=200).start()
    cep = CepRun(["--rules", str(rules), "--input", str(inp), "--follow", "--output",
                  str(out)], tmp_path / "cep.log")
    try:
        version = wait_for(lambda: cep.versions().get("watched_pair"), 10, "the rule")
        feeder.inject(user="bob", kind="start")  # bob is not watched yet
        feeder.inject(user="alice", kind="start")
        wait_for(lambda: {r["name"]: r["partial_matches"] for r in cep.status()["rules"]}
                 .get("watched_pair") == 1, 5, "alice's partial match")
        write_rule(rules / "lists" / "watched.txt", "alice\nbob\n")
        wait_for(lambda: cep.status()["reload"]["last"] is not None
                 and cep.status()["reload"]["last"]["ok"], 5, "the reload the edit starts")
        last = cep.status()["reload"]["last"]
        assert last["report"]["unchanged"] == ["watched_pair"]
        lists = {e["name"]: (e["kind"], e["entries"], e["rules"])
                 for e in cep.status()["lists"]}
        assert lists == {"watched": ("list", 2, ["watched_pair"]),
                         "tier": ("table", 1, ["watched_pair"])}
        assert last["report"]["partial_matches_kept"] == 1
        feeder.inject(user="bob", kind="start")
        feeder.inject(user="bob", kind="end")
        feeder.inject(user="alice", kind="end")
        got = wait_for(lambda: len(json_lines(out)) >= 2 and json_lines(out), 5, "two alerts")
        assert sorted((a["data"]["user"], a["rule_version"]) for a in got) == [
            ("alice", version), ("bob", version)]
    finally:
        feeder.stop()
        assert cep.terminate() == 0, cep.log()[-3000:]
