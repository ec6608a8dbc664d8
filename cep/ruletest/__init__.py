"""Rule tests (``cep test``): ``*.test.yaml`` files run through the engine's own operator.

:mod:`~cep.ruletest.loader` reads a file into :mod:`~cep.ruletest.model` objects,
:mod:`~cep.ruletest.runner` runs one test and compares, :mod:`~cep.ruletest.report` and
:mod:`~cep.ruletest.junit` present the outcome, :mod:`~cep.ruletest.suite` drives a run.
"""

from cep.ruletest.suite import SuiteResult, run_suite

__all__ = ["SuiteResult", "run_suite"]
