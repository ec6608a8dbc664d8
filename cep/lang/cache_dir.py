"""The user's private cache directory, checked every time it is used.

What is kept there (the parser's tables, parsed rule files: :mod:`cep.lang.grammar`,
:mod:`cep.lang.parse_cache`) is unpickled when read, so a file in it is code this process
runs.  The directory is therefore trusted only when nobody else can have written to it:

* ``$XDG_CACHE_HOME/cep`` (``~/.cache/cep`` when unset; no cache when the variable is a
  relative path), each sub-directory created ``0700``;
* every directory on the way from ``…/cep`` down is opened without following a symbolic link
  and must be a directory owned by the current user and writable by nobody else (group or
  other write bits: the directory is not used, and a warning says why, once per process; a
  directory that is only readable by others is made ``0700``);
* a file is read through the verified directory's descriptor (a directory renamed or
  replaced meanwhile does not matter), without following a symbolic link, and only when it
  is a regular file owned by the current user and writable by nobody else.

Anything unexpected means "no cache": callers build what they wanted to read.
``CEP_NO_GRAMMAR_CACHE`` (any non-empty value) turns the cache off.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["CacheDir", "base_directory", "open_cache"]

log = logging.getLogger("cep.cache")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_BYTES = 64 << 20
"""Largest cache file read (a bigger one is not ours)."""


def base_directory() -> Path | None:
    """``$XDG_CACHE_HOME/cep`` or ``~/.cache/cep``; ``None`` when the cache is off or the
    variable is not an absolute path."""
    if os.environ.get("CEP_NO_GRAMMAR_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return Path(base) / "cep"


class CacheDir:
    """A verified cache directory, held open by its descriptor ``fd`` (see the module
    docstring).  Names are plain file names inside it; no method raises ``OSError``."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def read(self, name: str) -> bytes | None:
        """The bytes of ``name`` when it is a regular file of the current user that nobody
        else can write (at most 64 MiB), else ``None``."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()
                    and not st.st_mode & 0o022 and st.st_size <= _MAX_BYTES):
                return None
            with os.fdopen(os.dup(fd), "rb") as fh:
                return fh.read(_MAX_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)

    def write(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data`` atomically (a ``0600`` temporary file renamed over
        it); a failure leaves no cache entry."""
        tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except OSError:
                pass

    def prune(self, suffix: str, keep: int) -> None:
        """Keep the ``keep`` most recently written files ending in ``suffix``."""
        try:
            entries = [e for e in os.scandir(self.fd) if e.name.endswith(suffix)]
            if len(entries) <= keep:
                return
            entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime)
            for old in entries[: len(entries) - keep]:
                os.unlink(old.name, dir_fd=self.fd)
        except OSError:
            pass


@contextmanager
def open_cache(*parts: str) -> Iterator[CacheDir | None]:
    """The verified directory ``base_directory()/parts…`` (created when missing), or ``None``
    when there is no usable cache.  The descriptor is closed on exit."""
    base = base_directory()
    fd = _open_verified(base, parts) if base is not None else None
    if fd is None or base is None:
        yield None
        return
    try:
        yield CacheDir(fd, base.joinpath(*parts))
    finally:
        os.close(fd)


def _open_verified(base: Path, parts: tuple[str, ...]) -> int | None:
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        parent = os.open(base.parent, _DIR_FLAGS)
    except OSError:
        return None
    fd: int | None = parent
    path = base.parent
    try:
        for name in (base.name, *parts):
            path = path / name
            assert fd is not None
            child = _open_child(fd, name, path)
            os.close(fd)
            fd = child
            if fd is None:
                return None
        return fd
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise


def _open_child(parent: int, name: str, path: Path) -> int | None:
    """Open (creating, ``0700``) and verify directory ``name`` under descriptor ``parent``."""
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:  # a symbolic link (ELOOP), not a directory, no permission
        _untrusted(str(path), "not a directory of its own (a symbolic link?)")
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            reason = f"owned by uid {st.st_uid}, not by this user"
        elif st.st_mode & 0o022:
            reason = f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
        else:
            if st.st_mode & 0o077:
                os.fchmod(fd, 0o700)
            return fd
    except OSError as exc:
        reason = str(exc)
    os.close(fd)
    _untrusted(str(path), reason)
    return None


@functools.cache
def _untrusted(path: str, reason: str) -> None:
    log.warning("cache directory %s is %s: not used (remove it, or set XDG_CACHE_HOME to a "
                "directory of your own)", path, reason)
