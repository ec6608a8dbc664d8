"""The code writer that emits generated loops: indentation, blocks, empty blocks."""

from __future__ import annotations

import pytest

from cep.compiler.writer import CodeWriter


def test_blocks_nest_and_the_source_runs() -> None:
    w = CodeWriter()
    with w.block("def f(xs):"):
        w.line("n = 0")
        with w.block("for x in xs:"):
            with w.block("if x > 1:"):
                w.line("n += x")
        w.line("return n")
    text = w.source()
    assert text == ("def f(xs):\n"
                    "    n = 0\n"
                    "    for x in xs:\n"
                    "        if x > 1:\n"
                    "            n += x\n"
                    "    return n\n")
    ns: dict[str, object] = {}
    exec(compile(text, "<test>", "exec"), ns)
    assert ns["f"]([1, 2, 3]) == 5  # type: ignore[operator]
    assert w.level == 0


def test_an_empty_block_gets_a_pass() -> None:
    w = CodeWriter()
    with w.block("if a:"):
        pass
    with w.block("else:"):
        w.line("b = 1")
    assert w.source() == "if a:\n    pass\nelse:\n    b = 1\n"


def test_indent_and_outdent_by_hand() -> None:
    w = CodeWriter(level=1)
    w.line("x = 1")
    w.indent()
    w.indent()
    w.line("y = 2")
    w.outdent(2)
    w.line("z = 3")
    assert w.source() == "    x = 1\n            y = 2\n    z = 3\n"
    assert w.count == 3
    with pytest.raises(ValueError, match="cannot outdent 2 levels from level 1"):
        w.outdent(2)
