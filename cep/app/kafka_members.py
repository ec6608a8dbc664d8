"""Static membership: two processes started with one ``group_instance_id`` are refused.

The broker keys a static member by its ``group.instance.id``: a member that joins with an id
already in the group *replaces* the holder (that is how a restarted member gets its partitions
back without a rebalance).  If the holder is still alive, its next heartbeat finds its member
id unknown, it rejoins and replaces the newcomer in turn, and the two take the partitions from
each other every few seconds — each restoring every task and fencing the other's producers.
Nothing in the protocol stops it (the Java client dies on ``FENCED_INSTANCE_ID``; aiokafka's
heartbeat does not even send the instance id and silently rejoins).

:class:`InstanceGuard` tells the two apart and stops the newcomer:

* before joining it describes the group; if a member already holds the id, that member may be
  this process's own predecessor (killed, its session not yet expired — the case static
  membership is for) or a live process: it cannot tell yet, and joins;
* whenever this member loses its membership (a revocation after its member id was reset, or a
  ``FENCED_INSTANCE_ID`` error) it describes the group again: if another member now holds the
  id, a live process uses it.  The process that found the id held when it started and is
  pushed out within :data:`GRACE_SESSIONS` session timeouts of its first assignment is the
  newcomer: it stops with :class:`DuplicateInstanceError` (exit status 2).  The other one takes
  its id back.  A member pushed out :data:`MAX_TAKEOVERS` times within a minute stops too,
  whichever it is (two processes started at the same moment find nobody at start).
"""

from __future__ import annotations

import logging
import time
from collections import deque

from aiokafka.errors import KafkaError

from cep.config import KafkaConfig
from cep.errors import ConfigError
from cep.io.kafka import GroupMember, group_members

__all__ = ["InstanceGuard", "DuplicateInstanceError"]

log = logging.getLogger("cep.kafka")

GRACE_SESSIONS = 2  # a predecessor that is alive pushes the newcomer out within this many
MAX_TAKEOVERS = 3  # takeovers within TAKEOVER_WINDOW_S: stop, whoever came first
TAKEOVER_WINDOW_S = 60.0


class DuplicateInstanceError(ConfigError):
    """Another live process of the group uses this process's ``group_instance_id``."""


def _who(m: GroupMember) -> str:
    return f"member {m.member_id} (client id {m.client_id!r}, host {m.host.lstrip('/')})"


class InstanceGuard:
    """Watches one static member's ``group_instance_id`` (does nothing without one)."""

    def __init__(self, k: KafkaConfig) -> None:
        self.k = k
        self.instance = k.group_instance_id
        self.prior: GroupMember | None = None  # who held the id when this process started
        self.first_assigned: float | None = None
        self.takeovers: deque[float] = deque()

    async def before_join(self) -> None:
        """Note who holds the id now (a predecessor whose session is still open, or a live
        process: told apart later).  A failed describe is logged and ignored."""
        if self.instance is None:
            return
        holder = await self._holder()
        if holder is not None:
            self.prior = holder
            log.info("group_instance_id %r is held by %s: a previous run of this member "
                     "whose session is still open, or another live process (then this one "
                     "stops as soon as that one takes its id back)", self.instance, _who(holder))

    def assigned(self) -> None:
        if self.first_assigned is None:
            self.first_assigned = time.monotonic()

    async def check(self, member_id: str | None) -> None:
        """After this member lost its membership (``member_id`` is what the client holds
        now, empty once reset): raise :class:`DuplicateInstanceError` if another live
        process took the id and this one is the newcomer (or the two keep alternating)."""
        if self.instance is None or self.first_assigned is None:
            return  # not a member yet: nothing was taken
        holder = await self._holder()
        if holder is None or (member_id and holder.member_id == member_id):
            return  # our session expired (a pause, a broker restart), or an ordinary rebalance
        now = time.monotonic()
        self.takeovers.append(now)
        while self.takeovers and now - self.takeovers[0] > TAKEOVER_WINDOW_S:
            self.takeovers.popleft()
        grace = GRACE_SESSIONS * self.k.session_timeout_ms / 1000
        newcomer = self.prior is not None and now - self.first_assigned < grace
        if newcomer or len(self.takeovers) >= MAX_TAKEOVERS:
            why = ("it held the id before this process started" if newcomer else
                   f"the two took the id from each other {len(self.takeovers)} times within "
                   f"{TAKEOVER_WINDOW_S:.0f} s")
            raise DuplicateInstanceError(
                f"group_instance_id {self.instance!r} of group {self.k.group_id} is used by "
                f"another live process, {_who(holder)}; {why}.  Two members with one "
                "group_instance_id take the partitions from each other: give every process "
                "its own [kafka] group_instance_id (or none).  This process stops.")
        log.warning("group_instance_id %r was taken by %s, which started after this "
                    "process: taking it back (that process stops)", self.instance,
                    _who(holder))

    async def _holder(self) -> GroupMember | None:
        try:
            members = await group_members(self.k)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("could not describe group %s to check group_instance_id %r: %s",
                        self.k.group_id, self.instance, exc)
            return None
        return next((m for m in members if m.instance_id == self.instance), None)
