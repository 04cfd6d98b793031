"""Reading a task's event log: the capped Redis stream its workers append to.

Entries have the id ``<event_id>-0`` (see ``stirfried.emitter``), so "every
event after N" is one ``XRANGE`` from ``N+1-0``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import redis.asyncio
from socketio.packet import Packet

from stirfried import events


@dataclasses.dataclass(frozen=True)
class TaskEvent:
    """One event of a task, live or replayed."""

    event_id: int
    name: str
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class LogRead:
    """The events after some id, and whether the task's log still exists at all."""

    events: list[TaskEvent]
    exists: bool


def event_from_entry(fields: dict[bytes, bytes]) -> TaskEvent:
    """Decode one stream entry (``event``, ``data`` and, for bytes, ``attachments``)."""
    payload = json.loads(fields[b"data"])
    if b"attachments" in fields:
        attachments = [base64.b64decode(item) for item in json.loads(fields[b"attachments"])]
        payload = Packet.reconstruct_binary(payload, attachments)
    return TaskEvent(int(payload[events.EVENT_ID]), fields[b"event"].decode(), payload)


class EventLog:
    """Reads task event logs from the Stirfried Redis server."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._redis = client

    async def read_after(self, task_id: str, after: int) -> LogRead:
        """Every logged event of ``task_id`` with an ``event_id`` above ``after``, in order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(events.event_log_key(task_id), min=f"{after + 1}-0")
            pipe.exists(events.event_sequence_key(task_id))
            entries, exists = await pipe.execute()
        return LogRead([event_from_entry(fields) for _id, fields in entries], bool(exists))

    async def close(self) -> None:
        await self._redis.aclose()
