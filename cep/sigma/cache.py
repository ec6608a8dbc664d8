"""Compiled Sigma files kept between runs, so that loading unchanged Sigma rules needs no
YAML parse, no pySigma and no compilation to the engine's rule form.

Loading SigmaHQ's 2,407 Windows rules spends most of its time in PyYAML, in pySigma's
parse and in :mod:`cep.sigma.detection`; the engine rules that come out of one file depend
only on that file's name and text, on the processing pipelines applied, and on the code
that compiled them.  So each Sigma file whose rules compiled (some perhaps left out with a
warning) is kept as a :class:`CompiledSigmaFile` under a hash of:

* the file's name and text, and the pipelines' key
  (:func:`cep.sigma.pipelines.load_keyed_pipeline`: the text of every pipeline file, in
  order; no cache is used for a pipeline without a key);
* the engine's version: the source of every module of :mod:`cep.sigma`, of the syntax tree,
  of the diagnostics and of the runtime's regexes, the versions of pySigma, PyYAML and
  google-re2 (which regexes are accepted), and Python's.

The compiled files of one load are kept together, pickled, as one *bundle* (a
:class:`CompiledSigmaBundle`, a file of the user's private cache directory
``$XDG_CACHE_HOME/cep/sigma`` or ``~/.cache/cep/sigma``; the directory and its checks are
:mod:`cep.lang.cache_dir`'s, as for parsed ``.cep`` files, :mod:`cep.lang.parse_cache`) named
by the list of the load's file paths, the pipelines' key and the engine's version: one file
to read and one to write per load (creating thousands of small files took a second on its
own), and a load whose files changed finds the others' in the same bundle, which is then
written again.  At most :data:`MAX_ENTRIES` bundles are kept (the least recently written go
first).  Any problem with the cache only means compiling again;
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

__all__ = ["CACHE_PARTS", "CompiledSigmaBundle", "CompiledSigmaFile", "MAX_ENTRIES",
           "bundle_name", "entry_key", "fits", "read_bundle", "write_bundle"]

MAX_ENTRIES = 32
"""Most bundles kept (one per set of Sigma files loaded)."""

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


@dataclass(frozen=True)
class CompiledSigmaBundle:
    """The compiled files of one load, by :func:`entry_key`."""

    files: dict[str, CompiledSigmaFile]


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


def entry_key(path: str, text: str, pipeline_key: str) -> str | None:
    """The key of the Sigma file ``path`` with ``text`` under the pipelines of
    ``pipeline_key`` (``""``: none) in a bundle; ``None`` when there is no cache."""
    tag = _engine_tag()
    if tag is None:
        return None
    h = hashlib.sha256(tag)
    h.update(pipeline_key.encode() + b"\0")
    h.update(path.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8"))
    return h.hexdigest()


def bundle_name(paths: list[str], pipeline_key: str) -> str | None:
    """The bundle's file name for a load of the Sigma files ``paths`` (in order) under the
    pipelines of ``pipeline_key``; ``None`` when there is no cache."""
    tag = _engine_tag()
    if tag is None or base_directory() is None:
        return None
    h = hashlib.sha256(tag)
    h.update(pipeline_key.encode() + b"\0")
    for path in paths:
        h.update(path.encode("utf-8", "surrogatepass") + b"\0")
    return f"{h.hexdigest()[:32]}.pickle"


def read_bundle(cache: CacheDir, name: str) -> dict[str, CompiledSigmaFile]:
    """The compiled files of bundle ``name`` by key; empty when it is missing, damaged or
    not a :class:`CompiledSigmaBundle`.  (Each file's entry is still checked against the
    file's path and text by its reader.)"""
    data = cache.read(name)
    if data is None:
        return {}
    try:
        found = pickle.loads(data)
    except Exception:  # noqa: BLE001 - stale or damaged: compile instead
        return {}
    if type(found) is not CompiledSigmaBundle or type(found.files) is not dict:
        return {}
    return found.files


def fits(entry: object, path: str, text: str) -> bool:
    """Whether ``entry`` is the :class:`CompiledSigmaFile` of ``path`` with ``text``."""
    return (type(entry) is CompiledSigmaFile and type(entry.file) is ast.RuleFile
            and entry.file.path == path and entry.file.text == text)


def write_bundle(cache: CacheDir, name: str, files: dict[str, CompiledSigmaFile]) -> None:
    """Keep ``files`` as bundle ``name`` (then at most :data:`MAX_ENTRIES` bundles); a
    failure leaves no bundle (see :meth:`CacheDir.write`)."""
    try:
        data = pickle.dumps(CompiledSigmaBundle(files), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is no cache
        return
    cache.write(name, data)
    cache.prune(".pickle", MAX_ENTRIES)
