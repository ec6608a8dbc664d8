"""The rule language: text → typed AST with spans → checked rules → canonical text.

* :mod:`cep.lang.ast` — the frozen AST every later layer reads;
* :mod:`cep.lang.operators` — every comparison, membership, text and matching operator,
  declared once;
* :mod:`cep.lang.grammar` — loads ``grammar/cep.lark`` once, with the operators written in;
* :mod:`cep.lang.parse` — ``parse_text`` / ``parse_file``: AST plus syntax diagnostics;
* :mod:`cep.lang.syntax_errors` — friendly syntax messages (heuristics, bad-example table);
* :mod:`cep.lang.check` — semantic checks (Flink CEP's compile-time rejections and more);
* :mod:`cep.lang.format` — canonical text and ``rule_version``;
* :mod:`cep.lang.load` — parse and check files and directories in one call.

Rule text is only ever parsed: nothing in it is evaluated here.
"""
