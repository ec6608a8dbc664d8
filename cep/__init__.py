"""cep: a complex-event-processing rule engine.

Rules are text files compiled to per-key NFAs with Flink CEP's pattern semantics; see
``docs/`` and the rule-language contract.
"""

__version__ = "0.1.0"
