"""Packaging: ``python -m build`` gives an sdist and a wheel that install into a clean venv
and run ``cep --version``, with the C extension where a compiler exists and without it
where none does (the extension is optional: setup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_distribution_name_is_not_the_taken_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "cep-rules-engine"
    assert project["scripts"]["cep"] == "cep.cli:main"
    assert any(d.startswith("zstandard") for d in project["dependencies"])


def _run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                         env={**os.environ, **(env or {})}, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("compiler", [True, False], ids=["with-extension", "no-compiler"])
def test_build_and_install_in_a_clean_venv(tmp_path: Path, compiler: bool) -> None:
    pytest.importorskip("build")
    src = tmp_path / "src"  # a copy: the build leaves nothing in the working tree
    src.mkdir()
    for name in ("cep", "pyproject.toml", "setup.py", "README.md"):
        _run("cp", "-r", ROOT / name, src)
    for built in [*src.rglob("*.so"), *src.rglob("__pycache__")]:
        _run("rm", "-rf", built)
    env = {} if compiler else {"CC": "false", "LDSHARED": "false"}
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--outdir", dist, src, env=env)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert wheels[0].name.startswith("cep_rules_engine-")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run(py, "-m", "pip", "install", "--quiet", wheels[0])
    out = _run(env_dir / "bin" / "cep", "--version", cwd=tmp_path)
    from cep import __version__

    assert out.stdout.strip() == f"cep {__version__}"
    has_ext = _run(py, "-c", "import importlib.util as u; "
                   "print(u.find_spec('cep._prescan') is not None)", cwd=tmp_path)
    assert has_ext.stdout.strip() == str(compiler)
