"""A directory of checkpoints for file mode, written atomically.

Each checkpoint is one file ``<name>.ckpt``.  A write goes to a temporary file in the same
directory, is flushed and ``fsync``-ed, then renamed over the old file, and the directory is
``fsync``-ed: a crash at any moment leaves either the old checkpoint or the new one, never a
torn file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

__all__ = ["DirectoryStore"]

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class DirectoryStore:
    """Checkpoints under ``directory`` (created ``0700`` on first write: a checkpoint holds
    events).

    Names are ``[A-Za-z0-9_.-]+`` (anything else is replaced by ``_``).
    """

    SUFFIX = ".ckpt"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        safe = "".join(c if _NAME.fullmatch(c) else "_" for c in name) or "_"
        return self.directory / (safe + self.SUFFIX)

    def save(self, name: str, data: bytes) -> Path:
        """Atomically replace checkpoint ``name`` with ``data``.  Raises OSError."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.path(name)
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self._sync_dir()
        return target

    def load(self, name: str) -> bytes | None:
        """The bytes of checkpoint ``name``, or ``None`` when there is none.  Raises OSError
        for an unreadable file."""
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        """Remove checkpoint ``name`` (no error when absent)."""
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return
        self._sync_dir()

    def _sync_dir(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
