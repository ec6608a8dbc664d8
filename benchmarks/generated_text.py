#!/usr/bin/env python3
"""Everything the compiler generates for a set of rule files, as one text, to compare trees.

For each rule file given (``.cep``, or a Sigma rule ``.yml``; directories are searched for
them) this writes, in a
stable order: the Python source of every compiled condition, header filter and key
(:attr:`GeneratedCode.source`; the emits' code is not kept where this can read it), the rule
index's keys, the batch loop of
:mod:`cep.operator.fastpath` for the whole file (with and without the rule index), and the
C line scanner's program of :mod:`cep.operator.prescan` (slots, gates, index).  Run it in two
trees over the same files and ``diff`` the outputs: a change that should not alter generated
code must leave them equal.

``--defer`` loads the rules as ``cep run`` does (``defer=True``: each function generated on
first use, here when its source is read): its output must equal the eager one's.

Usage, from the root of the tree to measure::

    python ../wt/benchmarks/generated_text.py [--defer] rules examples \
        ../shared/peers/patterns.cep > out.txt
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, ".")  # the tree it is run from (as benchmarks/engine_instructions.py)

from cep.app.rules import load_rule_set  # noqa: E402
from cep.operator import fastpath, prescan  # noqa: E402
from cep.operator.cep_operator import CepOperator  # noqa: E402
from cep.operator.gate import gate_of  # noqa: E402
from cep.operator.rule_index import RuleIndex  # noqa: E402


def _files(args: list[str]) -> list[Path]:
    out: list[Path] = []
    for a in args:
        p = Path(a)
        out += sorted([*p.rglob("*.cep"), *p.rglob("*.yml")]) if p.is_dir() else [p]
    return out


def _loop_text(rules: list[Any], source: str, index: RuleIndex | None) -> str:
    """The source :func:`fastpath.build_scanner` compiles (its ``compile`` call observed)."""
    seen: list[str] = []

    def observe(text: str, name: str, mode: str) -> Any:
        seen.append(text)
        return compile(text, name, mode)

    fastpath.compile = observe  # type: ignore[attr-defined]  # a module global shadowing it
    try:
        fastpath.build_scanner(rules, source, index=index)
    finally:
        del fastpath.compile  # type: ignore[attr-defined]
    return "".join(seen)


def dump(path: Path, defer: bool = False) -> str:
    """The generated text of one rule file (``defer``: loaded with ``defer=True``)."""
    rs = load_rule_set([str(path)], defer=True) if defer else load_rule_set([str(path)])
    out = [f"### {path.name}: {len(rs.rules)} rules, ok={rs.ok}"]
    for rule in rs.rules:
        out.append(f"## rule {rule.name}")
        for label, code in (("header", rule.header_code), ("key", rule.key_code)):
            if code is not None:
                out.append(f"# {label}\n{code.source}")
        for state in rule.nfa.states:
            for t in state.transitions:
                origin = t.cond.origin
                code = getattr(origin, "code", None) if origin is not None else None
                src = code.source if code is not None else None
                out.append(f"# {state.name} {t.action} -> {t.target.name}: {t.cond.label}"
                           + (f"\n{src}" if src else ""))
    op = CepOperator(rs.rules, lambda sink, rec: None)
    sources = sorted({s for r in rs.rules for s in (r.sources or ())} | {"input"})
    index = RuleIndex(op.rules)
    out.append(f"## index keys {sorted(map(repr, index.keys()))}")
    for source in sources:
        out.append(f"## loop {source}\n{_loop_text(op.rules, source, None)}")
        out.append(f"## loop {source} indexed\n{_loop_text(op.rules, source, index)}")
        found = prescan.gates_of(op.rules, source, "ts")
        if found is None:
            out.append(f"## scanner {source}: none")
            continue
        paths, owners, gates = found
        out.append(f"## scanner {source} paths {paths}")
        for rs_, g in zip(owners, gates, strict=True):
            out.append(f"# {rs_.rule.name}: {g!r}")
        out.append(f"# index {prescan.index_of(gates)!r}")
    for rs_ in op.rules:  # each rule alone too, as benchmarks/peers.py runs them
        found = prescan.gates_of([rs_], "input", "ts")
        out.append(f"## scanner {rs_.rule.name} alone: {found and (found[0], found[2])!r}")
    out.append(f"## wake guards {[repr(gate_of(r).wake) for r in op.rules]}")
    return "\n".join(out)


def main() -> None:
    args = sys.argv[1:]
    defer = "--defer" in args
    for path in _files([a for a in args if a != "--defer"]):
        print(dump(path, defer))


if __name__ == "__main__":
    main()
