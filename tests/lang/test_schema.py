"""Event schemas: the file format, inference from events, and rules checked against one
(unknown fields, literal types, enums, text operators on non-text) or, without one, across
the rule set."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cep.errors import ConfigError
from cep.lang.parse import parse_text
from cep.lang.schema import infer_schema, load_schema, parse_schema, schema_yaml
from cep.lang.typecheck import check_schema, mixed_literal_warnings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules" / "schema.yaml"
SHARED = ROOT.parent / "shared" / "data"

SCHEMA = parse_schema({"fields": {
    "ts": "integer", "user.name": "string", "amount": "number",
    "event.outcome": {"type": "string", "enum": ["success", "failure"]},
    "source.port": "integer", "tags": "list", "winlog.event_data.*": "string",
}})


def errors(text: str, schema: object = SCHEMA) -> list[tuple[int, int, str, str | None]]:
    rf, diags = parse_text(text, "r.cep")
    assert diags == []
    return [(d.span.line, d.span.col, d.message, d.hint)
            for d in check_schema([rf], schema)]  # type: ignore[arg-type]


def rule(where: str, extra: str = "") -> str:
    return f"rule r\n  pattern\n    begin a where {where}\n{extra}end\n"


def test_a_literal_of_another_type_than_the_field_is_an_error_naming_the_fix() -> None:
    [(line, col, message, hint)] = errors(rule("winlog.event_data.LogonType == 3"))
    assert (line, col) == (3, 50)
    assert "`winlog.event_data.LogonType` is a string in the schema" in message
    assert hint == 'write `"3"`'
    [(_, _, message, hint)] = errors(rule('amount <= "100"'))
    assert "the string \"100\" never holds" in message and hint == "write `100.0`"
    assert errors(rule("amount > 3 and source.port == 22 and amount < 2.5")) == []


def test_unknown_fields_enums_and_text_operators() -> None:
    [(_, _, message, hint)] = errors(rule('user.nme == "x"'))
    assert message.endswith("unknown field `user.nme`: not in the schema")
    assert hint == "did you mean `user.name`?"
    [(_, _, message, hint)] = errors(rule('event.outcome in ["success", "fail"]'))
    assert '"fail" is not a value of `event.outcome`' in message
    assert hint is not None and hint.startswith('did you mean "failure"?')
    [(_, _, message, _)] = errors(rule('source.port matches "^22"'))
    assert "`matches` on `source.port`, which is an integer" in message
    assert errors(rule('tags contains "x" and user.name starts with "adm"')) == []
    # objects, wildcards, `this`, stage reads, aggregates and the event time are known
    text = ("rule r\n  key by user\n  pattern\n    begin a where this.winlog.event_data.X == \"1\""
            "\n    next b where b.user.name == a.user.name and sum(a.amount) > 1 and ts > a.ts\n"
            "  emit { n: first(a).user.name }\nend\n")
    assert errors(text) == []


def test_a_misspelt_stage_read_as_an_unknown_field_suggests_the_stage() -> None:
    text = ("rule r\n  pattern\n    begin failure where event.outcome == \"failure\"\n"
            "    next ok where user.name == failur.user.name\nend\n")
    [(_, _, message, hint)] = errors(text)
    assert "unknown field `failur.user.name`" in message
    assert hint == "did you mean the stage `failure` (`failure.user.name`)?"


def test_a_stage_named_like_a_schema_root_is_reported_as_shadowing() -> None:
    text = ("rule r\n  pattern\n    begin user where event.outcome == \"failure\"\n"
            "    next ok where user.name == \"root\"\nend\n")
    [(_, _, message, hint)] = errors(text)
    assert "the stage name `user` shadows it" in message
    assert hint == "rename the stage `user`, or write `this.user.name`"


def test_without_a_schema_mixed_literal_types_across_rules_warn() -> None:
    one, _ = parse_text(rule('winlog.event_data.LogonType == "3" and code == "1"'), "a.cep")
    two, _ = parse_text(rule("winlog.event_data.LogonType in [3, 10] and code == \"2\""),
                        "b.cep")
    found = mixed_literal_warnings([one, two])
    # the minority type is the suspect: two numbers against one string
    [warning] = found
    assert (warning.file, warning.span.line, warning.severity) == ("a.cep", 3, "warning")
    assert 'compared with the string "3" here and with a number at b.cep:3' in warning.message


def test_the_file_format_and_its_errors(tmp_path: Path) -> None:
    schema = load_schema(SHIPPED)
    assert schema.lookup("winlog.event_data.LogonType") is not None
    assert schema.lookup("user") is not None and schema.lookup("nothing") is None
    for bad, words in [({"fields": {"a": "text"}}, "type must be one of"),
                       ({"fields": {"a": {"type": "string", "enums": []}}}, "unknown key"),
                       ({"field": {}}, "a schema is a mapping with `fields:`"),
                       ({"fields": {"a": {"type": "integer", "share": 2}}}, "share")]:
        with pytest.raises(ConfigError, match=words):
            parse_schema(bad)
    with pytest.raises(ConfigError, match="cannot read the schema"):
        load_schema(tmp_path / "none.yaml")


def test_inferred_schema_has_types_and_shares_and_reads_back() -> None:
    events = [{"ts": 1, "user": {"name": "a"}, "n": 1},
              {"ts": 2, "user": {"name": "b", "id": 7}, "n": "1", "x": None}]
    schema, n = infer_schema(events)
    assert n == 2
    assert {k: (sorted(v.types), v.share) for k, v in schema.fields.items()} == {
        "n": (["integer", "string"], 1.0), "ts": (["integer"], 1.0),
        "user.id": (["integer"], 0.5), "user.name": (["string"], 1.0)}
    again = parse_schema(yaml.safe_load(schema_yaml(schema, "test")))
    assert again.fields == schema.fields


def cep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_cli_check_with_schema_flag_and_config_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cep"
    bad.write_text(rule("winlog.event_data.LogonType == 3"))
    res = cep("check", str(bad), "--schema", str(SHIPPED))
    assert res.returncode == 1
    assert f"{bad}:3:50: error:" in res.stderr and 'hint: write `"3"`' in res.stderr
    toml = tmp_path / "cep.toml"
    toml.write_text(f'[rules]\npaths = ["{bad}"]\nschema = "{SHIPPED}"\n')
    assert cep("check", "--config", str(toml)).returncode == 1
    assert cep("check", str(bad)).returncode == 0  # without a schema: nothing to compare
    res = cep("check", "rules", "--schema", str(SHIPPED))
    assert res.returncode == 0, res.stderr
    res = cep("check", str(bad), "--schema", str(tmp_path / "none.yaml"))
    assert res.returncode == 2 and "cannot read the schema" in res.stderr


def test_cli_infer_schema(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"ts": 1, "a": {"b": "x"}}\nnot json\n{"ts": 2}\n')
    out = tmp_path / "s.yaml"
    res = cep("infer-schema", "--input", str(events), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "2 fields in 2 events, 1 line(s) not JSON objects left out" in res.stderr
    schema = load_schema(out)
    assert schema.fields["a.b"].share == 0.5 and schema.fields["ts"].types == {"integer"}


@pytest.mark.shared
def test_real_windows_events_hold_logon_type_as_a_string() -> None:
    """A common mistake: `LogonType == 3` against Windows data, where it is "3"."""
    from cep.mapping import DATASETS

    path = SHARED / "windows-security-mordor" / "purplesharp_ad_playbook_I_2020-10-22042947.json.gz"
    events = itertools.islice(DATASETS["windows-raw"](str(path)), 3000)
    schema, n = infer_schema(json.loads(json.dumps(e)) for e in events)
    assert n == 3000 and schema.fields["winlog.event_data.LogonType"].types == {"string"}
    [(_, _, message, hint)] = errors(rule("winlog.event_data.LogonType == 3"), schema)
    assert "is a string in the schema" in message and hint == 'write `"3"`'
