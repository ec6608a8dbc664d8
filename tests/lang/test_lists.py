"""Lists and lookup tables from files (docs/rule-language.md, *Lists and lookup tables*):
declarations, checks, loading, and membership / look-ups through compiled rules against a
brute-force reference (a scan of the values as written)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.lang.format import format_list_decl, format_rule, rule_version
from cep.lang.lists import load_lists
from cep.lang.parse import parse_text
from cep.operator.cep_operator import CepOperator


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def alerts(rules: list[CompiledRule], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    op = CepOperator(rules, lambda sink, rec: out.append(rec))
    for i, data in enumerate(events, 1):
        op.on_event(Event(i, i, data, "input", i))
    op.finish()
    return [r for r in out if "rule" in r]


def test_declarations_parse_format_and_keep_out_of_the_version() -> None:
    text = ('list admins from "lists/admins.txt"\n'
            'table geo from "lists/geo.csv" key "ip address"\n'
            "rule r\n  pattern\n    begin a where user in admins and geo[ip].country == \"BE\"\n"
            "end\n")
    rf, diags = parse_text(text)
    assert diags == []
    assert [(d.kind, d.name, d.path, d.key) for d in rf.lists] == [
        ("list", "admins", "lists/admins.txt", None),
        ("table", "geo", "lists/geo.csv", "ip address")]
    assert format_list_decl(rf.lists[1]) == 'table geo from "lists/geo.csv" key "ip address"\n'
    again, _ = parse_text("".join(map(format_list_decl, rf.lists)) + format_rule(rf.rules[0]))
    assert again.lists == rf.lists and again.rules == rf.rules
    # the version covers the names used, not where the files are
    moved, _ = parse_text(text.replace("lists/", "data/"))
    assert rule_version(moved.rules[0]) == rule_version(rf.rules[0])


def test_a_file_may_start_with_a_declaration(tmp_path: Path) -> None:
    write(tmp_path / "l.txt", "a\n")
    rules = write(tmp_path / "r.cep", 'list l from "l.txt"\nrule r\n  pattern\n'
                  "    begin a where x in l\nend\n")
    rs = load_rule_set([str(rules)])
    assert rs.ok, rs.diagnostics
    assert len(alerts(rs.rules, [{"x": "a"}, {"x": "b"}])) == 1


values = st.one_of(st.text(alphabet="abAB ßé#\t", max_size=5), st.integers(-3, 300).map(str))
queries = st.one_of(values, st.integers(-3, 300), st.booleans(), st.none(), st.just(1.0),
                    st.text(alphabet="abAB ßé", max_size=5).map(lambda s: f"  {s} "))


def ref_text(x: Any) -> str | None:
    return x if type(x) is str else str(x) if type(x) is int else None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(values, max_size=12), xs=st.lists(queries, min_size=1, max_size=8))
def test_membership_matches_a_scan_of_the_lines(tmp_path: Path, lines: list[str],
                                                xs: list[Any]) -> None:
    write(tmp_path / "lists" / "l.txt", "\n".join(lines) + "\n")
    rules = write(tmp_path / "r.cep", 'list l from "lists/l.txt"\n' + "".join(
        f"rule {name}\n  pattern\n    begin a where x {op} l\nend\n"
        for name, op in (("is_in", "in"), ("not_in", "not in"), ("in_ci", "in~"),
                         ("not_in_ci", "not in~"))))
    rs = load_rule_set([str(rules)])
    assert rs.ok, rs.diagnostics
    # the reference: the lines as written, stripped, without blanks and comments
    kept = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
    for x in xs:
        got = {a["rule"] for a in alerts(rs.rules, [{"x": x}])}
        t = ref_text(x)
        hit = t is not None and any(t == v for v in kept)
        hit_ci = t is not None and any(t.casefold() == v.casefold() for v in kept)
        want = {name for name, on in (("is_in", hit), ("not_in", x is not None and not hit),
                                      ("in_ci", hit_ci),
                                      ("not_in_ci", x is not None and not hit_ci)) if on}
        assert got == want, (kept, x)


cells = st.one_of(st.text(alphabet="abc ,\"\n", max_size=4), st.integers(-5, 5),
                  st.just(""), st.sampled_from(["007", "1.5", "-2e3", "1.", "x1"]))


def ref_cell(v: Any) -> Any:
    if v == "":
        return None
    if isinstance(v, int):
        return v
    return {"1.5": 1.5, "-2e3": -2000.0}.get(v, v)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.dictionaries(st.text(alphabet="k01", min_size=1, max_size=3),
                            st.tuples(cells, cells), max_size=8),
       xs=st.lists(st.one_of(st.text(alphabet="k01", max_size=3), st.integers(0, 11)),
                   min_size=1, max_size=6))
def test_look_ups_match_the_rows_written(tmp_path: Path, rows: dict[str, tuple[Any, Any]],
                                         xs: list[Any]) -> None:
    path = tmp_path / "lists" / "t.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "a", "b"])
        for k, (a, b) in rows.items():
            w.writerow([k, a, b])
    rules = write(tmp_path / "r.cep", 'table t from "lists/t.csv" key id\n'
                  "rule r\n  pattern\n    begin e where x in t or x not in t\n"
                  "  emit { row: t[e.x], a: t[e.x].a, b: t[e.x].b, known: e.x in t }\nend\n")
    rs = load_rule_set([str(rules)])
    assert rs.ok, rs.diagnostics
    for x in xs:
        (alert,) = alerts(rs.rules, [{"x": x}])
        t = ref_text(x)
        if t in rows:
            a, b = rows[t]
            row = {"id": int(t) if t.isdigit() and (t == "0" or t[0] != "0") else t,
                   "a": ref_cell(a), "b": ref_cell(b)}
            assert alert["data"] == {"row": row, "a": row["a"], "b": row["b"], "known": True}
        else:
            assert alert["data"] == {"row": None, "a": None, "b": None, "known": False}


@pytest.mark.parametrize("files, decl, message", [
    ({}, 'list l from "lists/none.txt"', "cannot read lists/none.txt"),
    ({"t.csv": "id,a\n1,2\n1,3\n"}, 'table t from "t.csv" key id',
     "t.csv:3:1: error: table `t`: the key '1' is given twice (first on line 2)"),
    ({"t.csv": "id,a\n1,2,3\n"}, 'table t from "t.csv" key id',
     "t.csv:2:1: error: table `t`: 3 cells where the header has 2"),
    ({"t.csv": "id,a\n"}, 'table t from "t.csv" key ip', "no column `ip`"),
    ({"t.csv": ""}, 'table t from "t.csv" key ip', "the file is empty"),
    ({"l.txt": b"\xff\xfe"}, 'list l from "l.txt"', "not UTF-8 text"),
    ({}, 'list l from "/etc/passwd"', "must be relative"),
    ({}, 'list l from "../outside.txt"', "leads out of the rule file's directory"),
])
def test_broken_lists_fail_the_whole_load_with_their_place(
        tmp_path: Path, files: dict[str, Any], decl: str, message: str) -> None:
    for name, content in files.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    good = write(tmp_path / "good.cep", "rule good\n  pattern\n    begin a where x == 1\nend\n")
    bad = write(tmp_path / "bad.cep", decl + "\nrule r\n  pattern\n    begin a\nend\n")
    rs = load_rule_set([str(good), str(bad)])
    assert not rs.ok and rs.rules == []  # all or nothing
    from cep.app.rules import render_diagnostics

    assert message in render_diagnostics(rs)


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "secret.txt", "root\n")
    rules_dir = tmp_path / "rules"
    (rules_dir / "lists").mkdir(parents=True)
    (rules_dir / "lists" / "l.txt").symlink_to(outside)
    rf, _ = parse_text('list l from "lists/l.txt"\n', str(rules_dir / "r.cep"))
    lists, diags = load_lists(rf)
    assert lists == {} and "leads out" in diags[0].message


def test_large_lists_are_one_hash_per_test(tmp_path: Path) -> None:
    write(tmp_path / "big.txt", "\n".join(f"user{i}" for i in range(200_000)) + "\n")
    rules = write(tmp_path / "r.cep", 'list big from "big.txt"\nrule r\n  pattern\n'
                  "    begin a where x in big\nend\n")
    rs = load_rule_set([str(rules)])
    (rule,) = rs.rules
    (name, data), = rule.lists
    assert name == "big" and len(data) == 200_000 and isinstance(data.keys, frozenset)
    assert len(alerts(rs.rules, [{"x": "user199999"}, {"x": "user200000"}])) == 1


def test_list_names_and_table_columns_are_no_event_fields_for_the_schema() -> None:
    from cep.lang.schema import parse_schema
    from cep.lang.typecheck import check_schema

    schema = parse_schema({"fields": {"user": "string", "ip": "string"}}, "<schema>")
    rf, _ = parse_text('list admins from "a.txt"\ntable geo from "g.csv" key ip\n'
                       "rule r\n  pattern\n    begin a where user in admins and "
                       "geo[ip].country == \"BE\" and nope == 1\nend\n")
    found = [d.message for d in check_schema([rf], schema)]
    assert len(found) == 1 and "nope" in found[0]


def test_like_on_a_field_the_schema_says_is_no_text_is_an_error() -> None:
    from cep.lang.schema import parse_schema
    from cep.lang.typecheck import check_schema

    schema = parse_schema({"fields": {"port": "integer", "path": "string"}}, "<schema>")
    rf, _ = parse_text('rule r\n  pattern\n    begin a where port like "80*" '
                       'or path like~ ["*.exe"] or port not like ["1?"]\nend\n')
    found = [d.message for d in check_schema([rf], schema)]
    assert len(found) == 2 and all("`port`" in m for m in found), found
