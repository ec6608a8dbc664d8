"""Broker connectivity as an operator reads it in the log.

aiokafka logs every failed connection attempt at ERROR — several lines a second while a broker
is away — and retries on its own with ``retry_backoff_ms``.  :class:`BrokerLink`, installed as
a filter on the run's log handlers, drops those records and says instead, once, that the broker
is unreachable and why, repeats a short reminder every ``remind_s`` seconds while it stays so,
and says when it is back (:meth:`BrokerLink.tick`, called by the pipeline's loop, notices that
no connection error has been seen for ``quiet_s`` seconds).  No data is lost meanwhile: nothing
is committed while the broker is away, so the outputs of the open checkpoint are held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["BrokerLink"]

log = logging.getLogger("cep.kafka")

_CONNECTION_ERRORS = (
    "Unable connect", "Connect call failed", "NodeNotReadyError", "Unable to update metadata",
    "KafkaConnectionError", "Failed fetch messages", "Group Coordinator Request failed",
    "RequestTimedOutError", "Connection reset", "not ready",
)


class BrokerLink(logging.Filter):
    """A log filter and outage tracker for one run.

    Args:
        bootstrap: the bootstrap servers, named in the log lines.
        remind_s: seconds between "still unreachable" reminders.
        quiet_s: seconds without a connection error after which the broker counts as back.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, bootstrap: str, remind_s: float = 30.0, quiet_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.remind_s = remind_s
        self.quiet_s = quiet_s
        self._clock = clock
        self.down_since: float | None = None
        self.last_error = 0.0
        self.last_reminder = 0.0
        self.outages = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record except aiokafka's connection errors, which update the state."""
        if not record.name.startswith("aiokafka") or record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        if not any(s in message for s in _CONNECTION_ERRORS):
            return True
        now = self._clock()
        self.last_error = now
        if self.down_since is None:
            self.down_since = self.last_reminder = now
            self.outages += 1
            log.warning("the Kafka broker %s is unreachable (%s); retrying with backoff, "
                        "outputs are held until it answers", self.bootstrap,
                        _reason(message))
        elif now - self.last_reminder >= self.remind_s:
            self.last_reminder = now
            log.warning("the Kafka broker %s is still unreachable after %.0f s; still "
                        "retrying", self.bootstrap, now - self.down_since)
        return False

    def tick(self) -> None:
        """Called from the run's loop: report the broker back after ``quiet_s`` calm seconds."""
        if self.down_since is not None and self._clock() - self.last_error >= self.quiet_s:
            log.warning("the Kafka broker %s answers again after %.1f s", self.bootstrap,
                        self.last_error - self.down_since)
            self.down_since = None


def _reason(message: str) -> str:
    """The most telling part of an aiokafka error line, shortened."""
    for marker in ("[Errno", "NodeNotReadyError", "RequestTimedOutError"):
        i = message.find(marker)
        if i >= 0:
            return message[i:i + 80].rstrip(").")
    return message[:80]
