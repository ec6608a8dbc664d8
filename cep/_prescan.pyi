"""Type stubs of the C extension built from cep/_native/prescan.c.

The ``gates`` that :func:`skip` and :func:`batch` return list each gate g wanting a line as
2g + 1 when it is certainly true for it, 2g when unknown."""

from typing import Any

class Program:
    def __init__(self, paths: tuple[tuple[str, ...], ...], time_slot: int,
                 owners: tuple[Any, ...], gates: tuple[Any, ...],
                 index: tuple[int, tuple[tuple[bytes, tuple[tuple[int, Any], ...]], ...],
                              tuple[int, ...]] | None = None,
                 holders: tuple[set[Any] | None, ...] | None = None) -> None: ...

def skip(program: Program, chunk: bytes, pos: int, last: int, due: int,
         max_bytes: int) -> tuple[int, int, int, int | None, tuple[int, ...] | None]: ...

def batch(program: Program, chunk: bytes, pos: int, last: int, due: int, max_bytes: int,
          horizon: int, cap: int
          ) -> tuple[int, list[tuple[int, int, int, int, tuple[int, ...], int]], int, int,
                     int | None, tuple[int, ...] | None]: ...
