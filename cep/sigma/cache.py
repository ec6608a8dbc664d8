"""Compiled Sigma files kept between runs, so that loading unchanged Sigma rules needs no
YAML parse, no pySigma and no compilation to the engine's rule form.

Loading SigmaHQ's 2,407 Windows rules spends most of its time in PyYAML, in pySigma's
parse and in :mod:`cep.sigma.detection`; the engine rules that come out of one file depend
only on that file's name and text, on the processing pipelines applied, and on the code
that compiled them.  So each Sigma file whose rules compiled (some perhaps left out with a
warning) is kept, pickled, as a :class:`CompiledSigmaFile` in the user's private cache
directory (``$XDG_CACHE_HOME/cep/sigma`` or ``~/.cache/cep/sigma``; the directory and its
checks are :mod:`cep.lang.cache_dir`'s, as for parsed ``.cep`` files,
:mod:`cep.lang.parse_cache`) under a hash of:

* the file's name and text, and the pipelines' key
  (:func:`cep.sigma.pipelines.load_keyed_pipeline`: the text of every pipeline file, in
  order; no cache is used for a pipeline without a key);
* the engine's version: the source of every module of :mod:`cep.sigma`, of the syntax tree,
  of the diagnostics and of the runtime's regexes, the versions of pySigma, PyYAML and
  google-re2 (which regexes are accepted), and Python's.

At most :data:`MAX_ENTRIES` files are kept (the least recently written go first, pruned
once per load).  Any problem with the cache only means compiling again;
``CEP_NO_GRAMMAR_CACHE`` turns it off with the other caches.  An entry is never code the
rule text chose: it is read only from a directory verified on this very call, and only a
:class:`CompiledSigmaFile` is accepted from it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

from cep.diagnostics import Diagnostic
from cep.lang import ast
from cep.lang.cache_dir import CacheDir, base_directory

__all__ = ["CACHE_PARTS", "CompiledSigmaFile", "MAX_ENTRIES", "entry_name", "read_entry",
           "write_entry"]

MAX_ENTRIES = 8192
"""Most compiled Sigma files kept (SigmaHQ publishes about 3,800 rules)."""

CACHE_PARTS = ("sigma",)
"""The cache's sub-directory under the user's cache directory."""

_FORMAT = b"cep-sigma-compiled-1"
_SIGMA = Path(__file__).parent
_DEPENDS = ("pysigma", "PyYAML", "google-re2")


@dataclass(frozen=True)
class CompiledSigmaFile:
    """What loading one Sigma file gave, as :func:`cep.sigma.load.load_sigma` keeps it.

    Attributes:
        file: the engine rule file (its rules carry the names they were given).
        diagnostics: the warnings of the rules left out.
        rejected: the rules left out, ``("file: title", reason)``.
    """

    file: ast.RuleFile
    diagnostics: tuple[Diagnostic, ...]
    rejected: tuple[tuple[str, str], ...]


@functools.cache
def _engine_tag() -> bytes | None:
    """A hash of what compiling a Sigma file depends on besides its text and the
    pipelines; ``None`` when something of it cannot be read (then no cache)."""
    h = hashlib.sha256(_FORMAT)
    h.update(f"\0{sys.version}\0".encode())
    try:
        for dist in _DEPENDS:
            h.update(f"{dist}={importlib.metadata.version(dist)}\0".encode())
        sources = sorted(_SIGMA.glob("*.py")) + [
            _SIGMA.parent / "lang" / "ast.py", _SIGMA.parent / "diagnostics.py",
            _SIGMA.parent / "compiler" / "runtime.py"]  # (which regexes RE2 is given)
        for file in sources:
            h.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    except Exception:  # noqa: BLE001 - no cache rather than a wrong one
        return None
    return h.digest()


def entry_name(path: str, text: str, pipeline_key: str) -> str | None:
    """The entry's file name for the Sigma file ``path`` with ``text`` under the pipelines
    of ``pipeline_key`` (``""``: none); ``None`` when there is no cache."""
    tag = _engine_tag()
    if tag is None or base_directory() is None:
        return None
    h = hashlib.sha256(tag)
    h.update(pipeline_key.encode() + b"\0")
    h.update(path.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8"))
    return f"{h.hexdigest()[:32]}.pickle"


def read_entry(cache: CacheDir, name: str, path: str, text: str) -> CompiledSigmaFile | None:
    """The entry ``name`` when it is a :class:`CompiledSigmaFile` of ``path`` with ``text``,
    else ``None`` (missing, damaged, stale)."""
    data = cache.read(name)
    if data is None:
        return None
    try:
        found = pickle.loads(data)
    except Exception:  # noqa: BLE001 - stale or damaged: compile instead
        return None
    if type(found) is not CompiledSigmaFile or type(found.file) is not ast.RuleFile:
        return None
    if found.file.path != path or found.file.text != text:
        return None
    return found


def write_entry(cache: CacheDir, name: str, entry: CompiledSigmaFile) -> None:
    """Keep ``entry`` as ``name``; a failure leaves no entry (see :meth:`CacheDir.write`)."""
    try:
        data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is no cache
        return
    cache.write(name, data)
