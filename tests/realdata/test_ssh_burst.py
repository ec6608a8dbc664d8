"""A real brute-force burst (147 failed passwords from one address for one user within seven
minutes, ``ssh-auth-logs``) against a plain Kleene rule under ``skip past last event``, with
default settings: the alert is Flink's (first failure at line 2731, 147 failures, success at
line 3180), and cohort pruning keeps the key's partial matches linear in the burst (Flink's
algorithm holds 10,587 for it; the default cap of 10,000 then evicted the earliest evidence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.app.rules import load_rule_set
from cep.event import Event
from cep.mapping.datasets import ssh_events
from cep.nfa.matcher import KeyState
from cep.operator.cep_operator import CepOperator

from .engine_run import dataset, run_mapped

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data

RULE = """
rule ssh_burst
  where event.action == "login" and source.address is not null
  key by source.address, user.name
  pattern
    begin fails where event.outcome == "failure" times 3 or more
    followed by ok where event.outcome == "success"
  within 10m
  after match skip past last event
end
"""

KEY = {"source.address": "24.151.103.17", "user.name": "elastic_user_0"}


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "ssh_burst.cep"
    path.write_text(RULE)
    return path


def test_the_burst_alert_is_flinks_with_default_settings(rule_file: Path,
                                                         tmp_path: Path) -> None:
    events = ssh_events(dataset("ssh-auth-logs/events.csv"))
    alerts, _, _ = run_mapped([str(rule_file)], events, tmp_path)
    burst = [a for a in alerts if a["key"] == KEY]
    assert len(burst) == 1
    alert = burst[0]
    fails = alert["match"]["fails"]
    assert len(fails) == 147 and fails[0]["log"]["file"]["line"] == 2731
    assert alert["match"]["ok"][0]["log"]["file"]["line"] == 3180
    assert "evicted_partial_matches" not in alert


def test_the_burst_key_holds_at_most_a_thousand_partial_matches(rule_file: Path) -> None:
    rs = load_rule_set([str(rule_file)])
    assert rs.ok, rs.diagnostics
    out: list[dict[str, Any]] = []
    op = CepOperator(rs.rules, lambda sink, rec: out.append(rec))  # the default cap
    key = tuple(KEY.values())
    peak = 0
    for seq, data in enumerate(ssh_events(dataset("ssh-auth-logs/events.csv")), 1):
        data = orjson.loads(orjson.dumps(data))
        op.on_event(Event(data["ts"], seq, data, "input", seq))
        ks = op.rules[0].keys.get(key)
        if isinstance(ks, KeyState):
            peak = max(peak, len(ks.a) - 1)  # (the start computation is not a partial match)
    op.finish()
    assert 147 <= peak <= 1_000
    assert op.rules[0].evictions == 0
    assert [len(a["match"]["fails"]) for a in out if a.get("key") == KEY] == [147]
