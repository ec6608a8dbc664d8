"""``emit to stream NAME`` and ``from NAME``: parse, canonical text, and the checks over a rule
set (:mod:`cep.lang.streams`), with their places."""

from __future__ import annotations

from pathlib import Path

from cep.lang.format import format_rules
from cep.lang.load import load_rules
from cep.lang.parse import parse_text

PRODUCER = """rule a
  where kind == "a"
  pattern begin e
  emit to stream s { u: e.u }
end
"""


def _diags(tmp_path: Path, *texts: str) -> list[str]:
    paths = []
    for i, text in enumerate(texts):
        p = tmp_path / f"f{i}.cep"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    _, diags = load_rules(paths)
    return [f"{Path(d.file).name}:{d.span.line}:{d.span.col}: {d.severity}: {d.message}"
            for d in diags]


def test_stream_emit_parses_and_formats_back() -> None:
    rf, diags = parse_text(PRODUCER, "p.cep")
    assert not diags
    [rule] = rf.rules
    emit = rule.match_emit
    assert emit is not None and emit.stream and emit.sink == "s"
    text = format_rules(rf.rules)
    assert "  emit to stream s {\n" in text
    assert parse_text(text, "q.cep")[0].rules == rf.rules
    # a sink of another name is an output, as before
    plain = parse_text(PRODUCER.replace("to stream s", "to audit"), "p.cep")[0].rules[0]
    assert plain.match_emit is not None and not plain.match_emit.stream


def test_a_stream_read_in_another_file_is_checked_across_files(tmp_path: Path) -> None:
    reader = "rule b\n  from s\n  key by data.u\n  pattern begin x\n  emit { }\nend\n"
    assert _diags(tmp_path, PRODUCER, reader) == []
    assert _diags(tmp_path, PRODUCER) == [
        "f0.cep:4:3: warning: no rule reads the stream `s` that rule `a` emits to"]


def test_mixed_sources_and_cycles_are_errors_at_their_from(tmp_path: Path) -> None:
    mixed = "rule b\n  from s, input\n  pattern begin x\n  emit { }\nend\n"
    assert _diags(tmp_path, PRODUCER, mixed) == [
        "f1.cep:2:3: error: rule `b` reads the derived stream `s` and the input(s) input"]
    loop = ("rule b\n  from s\n  pattern begin x\n  emit to stream t { }\nend\n"
            "rule c\n  from t\n  pattern begin x\n  emit to stream s { }\nend\n")
    assert _diags(tmp_path, loop) == [
        "f0.cep:2:3: error: rule `b` reads what it emits: b → c → b",
        "f0.cep:7:3: error: rule `c` reads what it emits: c → b → c"]
    itself = "rule b\n  from s\n  pattern begin x\n  emit to stream s { }\nend\n"
    assert _diags(tmp_path, itself) == [
        "f0.cep:2:3: error: rule `b` reads what it emits: b → b"]


def test_a_timeout_record_cannot_go_to_a_stream(tmp_path: Path) -> None:
    text = ("rule b\n  pattern begin x followed by y within 1m\n"
            "  on timeout emit to stream s { }\nend\n")
    [diag] = _diags(tmp_path, text)
    assert diag.startswith("f0.cep:3:") and ": error: " in diag


def test_with_a_config_a_from_must_name_a_source_or_a_stream(tmp_path: Path) -> None:
    from cep.lang.streams import check_sources

    reader = "rule b\n  from s, auht\n  pattern begin x\n  emit { }\nend\n"
    paths = [tmp_path / "p.cep", tmp_path / "r.cep"]
    for p, text in zip(paths, (PRODUCER, reader), strict=True):
        p.write_text(text, encoding="utf-8")
    files, _ = load_rules(paths)
    [diag] = check_sources(files, ["auth"])
    assert (Path(diag.file).name, diag.span.line, diag.span.col) == ("r.cep", 2, 3)
    assert diag.message == ("rule `b` reads `auht`, which is neither a source of the config "
                            "(auth) nor a stream a rule emits to")
    assert diag.hint == "did you mean `auth`?"
    assert check_sources(files, ["auth", "auht"]) == []
