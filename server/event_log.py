"""Reading a task's event log: the capped Redis stream its workers append to.

Entries have the id ``<event_id>-0`` (see :mod:`stirfried.emitter`), so "every
event after N" is one ``XRANGE`` from ``N+1-0``.
"""

from __future__ import annotations

import dataclasses

import redis.asyncio

from stirfried import protocol
from stirfried.protocol import TaskEvent


@dataclasses.dataclass(frozen=True)
class LogRead:
    """The events after some id, and whether the task's log still exists at all."""

    events: list[TaskEvent]
    exists: bool
    epoch: str | None = None
    """The identity of the log (:data:`stirfried.protocol.EPOCH`), if it has one."""


class EventLog:
    """Reads task event logs from the Stirfried Redis server (the client is not its own)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._redis = client

    async def read_after(self, task_id: str, after: int) -> LogRead:
        """Every logged event of ``task_id`` with an ``event_id`` above ``after``, in order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(protocol.event_log_key(task_id), min=f"{after + 1}-0")
            pipe.exists(protocol.event_sequence_key(task_id))
            pipe.get(protocol.epoch_key(task_id))
            entries, exists, epoch = await pipe.execute()
        return LogRead(
            [protocol.decode_log_entry(fields) for _id, fields in entries],
            bool(exists),
            epoch.decode() if epoch else None,
        )

    async def last_event(self, task_id: str) -> TaskEvent | None:
        """The newest logged event of ``task_id``, if any."""
        entries = await self._redis.xrevrange(protocol.event_log_key(task_id), count=1)
        fields = entries[0][1] if entries else None
        return protocol.decode_log_entry(fields) if fields else None  # type: ignore[arg-type]
