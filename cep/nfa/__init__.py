"""The automaton: compiled once per rule version, shared by every key; per-key state apart.

Knows nothing of the rule language: it consumes :mod:`cep.nfa.pattern` specs.
"""
