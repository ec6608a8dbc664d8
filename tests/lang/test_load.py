"""Loading rule files and directories: what a directory holds at the moment it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

import cep.lang.load as load

RULE = 'rule r{n}\n  pattern\n    begin a where x == {n}\nend\n'


def test_a_file_deleted_while_its_directory_is_loaded_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in (1, 2):
        (tmp_path / f"r{n}.cep").write_text(RULE.format(n=n))
    real = load.parse_file

    def racing_parse(path: Path):  # type: ignore[no-untyped-def]
        if path.name == "r2.cep":
            path.unlink()  # deleted between the directory listing and the read
        return real(path)

    monkeypatch.setattr(load, "parse_file", racing_parse)
    files, diags = load.load_rules([tmp_path])
    assert [rf.path for rf in files] == [str(tmp_path / "r1.cep")]
    assert diags == []


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    files, diags = load.load_rules([tmp_path / "gone.cep"])
    assert files == []
    assert [d.message for d in diags] == ["no such file or directory"]


# --------------------------------------------------------------------------- what is not read


SECRET = "hunter2-do-not-echo"


def _messages(diags: list) -> str:  # type: ignore[type-arg]
    from cep.diagnostics import render

    return "\n".join(render(d, None) for d in diags)


def test_a_link_out_of_the_rule_directory_is_refused_by_name(tmp_path: Path) -> None:
    rules, outside = tmp_path / "rules", tmp_path / "private"
    rules.mkdir()
    outside.mkdir()
    (rules / "r.cep").write_text(RULE.format(n=1))
    (outside / "secret.cep").write_text(f"{SECRET}=1\n")
    (rules / "env.cep").symlink_to("/proc/self/environ")
    (rules / "passwd.cep").symlink_to("/etc/passwd")
    (rules / "secret.cep").symlink_to(outside / "secret.cep")
    (rules / "sub").mkdir()
    (rules / "sub" / "up.cep").symlink_to("../../private/secret.cep")
    files, diags = load.load_rules([rules])
    assert [rf.path for rf in files] == [str(rules / "r.cep")]
    assert sorted((d.file, d.span.line) for d in diags) == [
        (str(rules / name), 0) for name in ("env.cep", "passwd.cep", "secret.cep",
                                              "sub/up.cep")]
    text = _messages(diags)
    assert "symbolic link to a file outside the rule directories" in text
    assert SECRET not in text and "root:" not in text and "/etc/passwd" not in text


def test_a_link_within_the_rule_directories_is_read(tmp_path: Path) -> None:
    rules, shared = tmp_path / "rules", tmp_path / "shared"
    rules.mkdir()
    shared.mkdir()
    (rules / "real").mkdir()
    (rules / "real" / "r.cep").write_text(RULE.format(n=1))
    (rules / "alias.cep").symlink_to("real/r.cep")  # the same file: loaded once
    (shared / "s.cep").write_text(RULE.format(n=2))
    (rules / "s.cep").symlink_to(shared / "s.cep")  # under another rule directory: fine
    files, diags = load.load_rules([rules, shared])
    assert diags == []
    assert sorted(r.name for rf in files for r in rf.rules) == ["r1", "r2"]


def test_a_file_that_is_not_a_rule_file_is_reported_without_its_content(
        tmp_path: Path) -> None:
    from cep.app.rules import load_rule_set, render_diagnostics

    (tmp_path / "bin.cep").write_bytes(b"rule x\0" + SECRET.encode())
    (tmp_path / "latin1.cep").write_bytes(f"# {SECRET} \xe9\n".encode("latin-1"))
    (tmp_path / "env.cep").write_text(f"DEMO_SECRET={SECRET}\nrule r\n")
    (tmp_path / "ok.cep").write_text("# a comment\n\n" + RULE.format(n=1))
    (tmp_path / "empty.cep").write_text("")
    rs = load_rule_set([str(tmp_path)])
    shown = render_diagnostics(rs)
    assert SECRET not in shown and "DEMO_SECRET" not in shown
    assert sorted((Path(d.file).name, d.message) for d in rs.errors) == [
        ("bin.cep", "not a rule file: it holds control characters (binary data?); its "
                    "content is not shown"),
        ("env.cep", "expected `rule`, found something else; the rest of the file is not "
                    "read"),
        ("latin1.cep", "not a rule file: it is not UTF-8 text; its content is not shown"),
    ]
    assert [r.name for rf in rs.files for r in rf.rules] == ["r1"]


def test_a_typo_of_rule_on_the_first_line_is_named_with_its_position(tmp_path: Path) -> None:
    from cep.app.rules import load_rule_set, render_diagnostics

    (tmp_path / "typo.cep").write_text("# brute force\n\nrul x\n  pattern\n    begin a\nend\n")
    rs = load_rule_set([str(tmp_path)])
    (diag,) = rs.errors
    assert (diag.span.line, diag.span.col) == (3, 1)
    assert diag.message == "expected `rule`, found `rul`; the rest of the file is not read"
    assert diag.hint == "did you mean `rule`?"
    assert "typo.cep:3:1: error" in render_diagnostics(rs)
