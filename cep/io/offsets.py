"""A range of a topic's history, as plain data: what ``cep replay --from/--to`` select.
Layer 4, without a Kafka client (the command line imports it on every start)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OffsetBound"]


@dataclass(frozen=True)
class OffsetBound:
    """One end of a range of a topic: a Kafka timestamp (``time_ms``, epoch ms: the first
    offset whose message timestamp is ≥ it), an offset for every partition (``offset``), one
    per partition (``offsets``: partition → offset; unlisted partitions take the topic's
    beginning for a start and its end for an end), or, all ``None``, the beginning (start)
    or the end as it is when the range is resolved (end)."""

    time_ms: int | None = None
    offset: int | None = None
    offsets: dict[int, int] | None = None
