"""Log output of a run: plain text (the default) or one JSON object per line.

Plain text: ``2026-01-01T00:00:00.000Z INFO cep.reload: rules reloaded (file change): …``.
JSON (``--log-format json``): ``{"ts": "…", "level": "info", "logger": "cep.reload",
"message": "…", …}`` plus the structured fields a log call passes as ``extra={"fields":
{...}}`` (a reload report, a diagnostic's ``file``/``line``/``col``), so log pipelines need not
parse messages.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson

__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "setup_logging"]

LOG_FORMATS = ("text", "json")


def _iso(created: float) -> str:
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>`` and the exception, if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, the fields of
    ``extra={"fields": {...}}`` and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                doc.setdefault(k, v)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(fmt: str = "text", level: int = logging.INFO,
                  stream: TextIO | None = None) -> logging.Handler:
    """Route the ``cep`` loggers (and warnings of libraries) to ``stream`` (standard error) in
    ``fmt`` (``text`` or ``json``); replaces handlers installed earlier.  Returns the handler.
    Raises ValueError for an unknown format."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("cep").setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    return handler
