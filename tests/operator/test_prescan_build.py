"""The C line scanner is built by the project's install step (``make install``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cep.operator import prescan


@pytest.mark.skipif(os.environ.get("CEP_REQUIRE_NATIVE") != "1",
                    reason="only where the test command requires the extension")
def test_the_extension_is_built() -> None:
    assert prescan.AVAILABLE, "cep._prescan is missing: run `make install` (scripts/build-deps.sh)"


def test_the_pure_path_can_be_forced() -> None:
    code = "from cep.operator import prescan; print(prescan.AVAILABLE)"
    plain = {k: v for k, v in os.environ.items() if k != "CEP_PUREPYTHON"}
    for switch, want in (("1", "False"), (None, str(_built()))):
        env = plain if switch is None else {**plain, "CEP_PUREPYTHON": switch}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.strip() == want, switch


def _built() -> bool:
    """Whether the extension is importable at all (this process may run the pure path)."""
    import importlib.util

    return importlib.util.find_spec("cep._prescan") is not None
