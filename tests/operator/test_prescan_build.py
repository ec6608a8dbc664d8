"""The C line scanner is built by the project's install step (``make install``)."""

from __future__ import annotations

import os

import pytest

from cep.operator import prescan


@pytest.mark.skipif(os.environ.get("CEP_REQUIRE_NATIVE") != "1",
                    reason="only where the test command requires the extension")
def test_the_extension_is_built() -> None:
    assert prescan.AVAILABLE, "cep._prescan is missing: run `make install` (scripts/build-deps.sh)"
