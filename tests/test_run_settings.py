"""The one merge of `cep run`'s flags with its cep.toml (cep.app.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.app.settings import RunFlags, SettingsError, input_format, resolve_file_run
from cep.config import parse_config


def test_flags_alone() -> None:
    run = resolve_file_run(RunFlags(max_out_of_orderness="5s", max_future_skew="off",
                                    sinks=("audit=/tmp/a.jsonl",)), None)
    o = run.options
    assert (o.path, o.max_out_of_orderness_ms, o.max_future_skew_ms) == ("-", 5000, None)
    assert run.outputs == {"alerts": "-", "audit": "/tmp/a.jsonl"}
    assert run.watch and run.http is None and run.checkpoint_dir is None


def test_the_config_fills_what_no_flag_gives(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("ts,user\n")
    cfg = parse_config(
        '[sources.auth]\nkind = "file"\npath = "in.csv"\nformat = "csv"\n'
        'max_out_of_orderness = "2s"\n[sinks.alerts]\nkind = "file"\npath = "out.jsonl"\n'
        '[sinks.late]\nkind = "file"\npath = "late.jsonl"\n'
        '[state]\nmax_future_skew = "1h"\nmax_events_per_match = 7\ncheckpoint_dir = "ck"\n'
        '[metrics]\nhttp = "127.0.0.1:9999"\n', str(tmp_path / "cep.toml"))
    run = resolve_file_run(RunFlags(late="mine.jsonl"), cfg)
    o = run.options
    assert o.path == str(tmp_path / "in.csv") and o.fmt == "csv" and o.source == "auth"
    assert (o.max_out_of_orderness_ms, o.max_future_skew_ms, o.max_events_per_match) == (
        2000, 3_600_000, 7)
    assert run.outputs == {"alerts": str(tmp_path / "out.jsonl"), "late": "mine.jsonl"}
    assert run.checkpoint_dir == str(tmp_path / "ck") and run.http == "127.0.0.1:9999"
    assert not run.watch  # a finite file
    flagged = resolve_file_run(RunFlags(max_future_skew="10m", max_events_per_match=3), cfg)
    assert flagged.options.max_future_skew_ms == 600_000
    assert flagged.options.max_events_per_match == 3


@pytest.mark.parametrize(("flags", "message"), [
    (RunFlags(max_out_of_orderness="5"), "5ms?"),
    (RunFlags(sinks=("nofile",)), "--sink takes NAME=FILE"),
    (RunFlags(input_path="/no/such/file"), "no such input file"),
    (RunFlags(time_format="no directives"), "time"),
])
def test_flags_that_do_not_make_a_run(flags: RunFlags, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("?", r"\?")):
        resolve_file_run(flags, None)


def test_a_flag_given_wins_over_the_config_source(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    cfg = parse_config(
        '[sources.auth]\nkind = "file"\npath = "in.jsonl"\nevent_time = "when"\n'
        'event_time_unit = "s"\nmax_out_of_orderness = "2s"\n'
        '[state]\nmax_partial_matches_per_key = 50\n', str(tmp_path / "cep.toml"))
    plain = resolve_file_run(RunFlags(), cfg).options
    assert (plain.time.field, plain.max_out_of_orderness_ms) == ("when", 2000)
    assert plain.max_partial_matches_per_key == 50
    given = resolve_file_run(RunFlags(event_time="ts", max_out_of_orderness="0s",
                                      max_partial_matches_per_key=5), cfg).options
    assert (given.time.field, given.max_out_of_orderness_ms) == ("ts", 0)
    assert given.max_partial_matches_per_key == 5 and given.source == "auth"


@pytest.mark.parametrize(("fmt", "old", "columns", "expected"), [
    (None, None, None, ("json", ())),
    (None, None, "ts,user", ("csv", ())),
    ("csv", None, None, ("csv", ())),
    (None, "csv", None, ("csv", ("--format is deprecated here; use --input-format",))),
])
def test_the_input_format(fmt: str | None, old: str | None, columns: str | None,
                          expected: tuple[str, tuple[str, ...]]) -> None:
    assert input_format(fmt, old, columns) == expected


@pytest.mark.parametrize(("flags", "message"), [
    (RunFlags(input_format="json", columns="ts,user"), "--columns names the columns"),
    (RunFlags(input_format="json", old_format="csv"), "disagree"),
    (RunFlags(columns="ts,,user"), "distinct, non-empty"),
])
def test_inputs_that_do_not_agree(flags: RunFlags, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve_file_run(flags, None)
