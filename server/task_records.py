"""What the fleet issued: a record per task, and the tasks of each tag ("my tasks").

When a task is scheduled the gateway writes, next to where its events will be
logged (same hash tag, same lifetime: ``stirfried_event_log_ttl``),

- its record (:func:`stirfried.protocol.task_record_key`): ``name`` and ``scheduled``;
  the worker adds ``state``, ``started`` and ``finished`` as the task runs;
- its tags (:func:`stirfried.protocol.tags_key`), which open it to ``follow_tags``
  holders (:mod:`task_access`);
- its id in the sorted set of each owner tag (:func:`stirfried.protocol.tagged_tasks_key`):
  ``subject:<sub>`` and a token's ``tags``, or an anonymous Socket.IO session's tag.

So ``GET /task/{id}`` can tell an id the fleet never issued (404) from a task
still queued (PENDING), and a caller can list its recent tasks after a reload.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio

from stirfried import protocol

logger = logging.getLogger(__name__)

# Ids kept per tag: a caller lists its recent tasks, not its whole history.
MAX_TASKS_PER_TAG = 1000
# Tags one listing reads at most (a token may carry many follow_tags).
MAX_LISTED_TAGS = 20
# Failures to record are logged at most this often (a Redis outage fails every task).
REPORT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """One entry of "my tasks"."""

    task_id: str
    name: str | None
    state: str
    scheduled: float | None
    started: float | None
    finished: float | None


@dataclasses.dataclass(frozen=True)
class TaskPage:
    """A page of "my tasks", newest first; ``next`` is the cursor of the following page."""

    records: tuple[TaskRecord, ...]
    next: float | None


class TaskRecords:
    """Writes and reads task records, tags and per-tag task lists."""

    def __init__(self, client: redis.asyncio.Redis | None, ttl: int) -> None:
        self._redis = client
        self._ttl = ttl
        self._unrecorded = 0
        self._reported_at = -math.inf

    async def record(
        self,
        tasks: Sequence[tuple[str, str]],
        access_tags: Iterable[str],
        owner_tags: Iterable[str],
        scheduled: float | None = None,
    ) -> None:
        """Record newly scheduled tasks, ``(task_id, name)`` each: the main one first, then the
        chained ones (known to ``GET /task/{id}`` too; "my tasks" lists the main one).
        ``scheduled``: when they were scheduled (default now); a record written after the
        publish passes the time from before it, for a quick task may have ended meanwhile.
        Best effort: without Redis the task still runs; it is then unknown to ``GET
        /task/{id}`` until a worker reports on it."""
        if self._redis is None:
            return
        at = time.time() if scheduled is None else scheduled
        access_tags, owner_tags = sorted(access_tags), sorted(owner_tags)
        main_id = tasks[0][0]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for task_id, name in tasks:
                    key = protocol.task_record_key(task_id)
                    pipe.hset(key, mapping={"name": name, "scheduled": at})
                    pipe.expire(key, self._ttl)
                if access_tags:
                    pipe.sadd(protocol.tags_key(main_id), *access_tags)
                    pipe.expire(protocol.tags_key(main_id), self._ttl)
                for tag in owner_tags:
                    key = protocol.tagged_tasks_key(tag)
                    pipe.zadd(key, {main_id: at})
                    pipe.zremrangebyrank(key, 0, -MAX_TASKS_PER_TAG - 1)
                    pipe.expire(key, self._ttl)
                await pipe.execute()
        except (redis.RedisError, OSError) as error:
            self._report(main_id, error)

    def _report(self, task_id: str, error: BaseException) -> None:
        """Loud, for follow_tags holders will be refused the task and "my tasks" will miss it;
        but once per :data:`REPORT_SECONDS`, with a count, not once per task of an outage."""
        self._unrecorded += 1
        now = time.monotonic()
        if now - self._reported_at >= REPORT_SECONDS:
            logger.error(
                "could not record %d task(s), the last %s (tags and my tasks will miss them): %s",
                self._unrecorded,
                task_id,
                error,
            )
            self._unrecorded, self._reported_at = 0, now

    async def known(self, task_id: str) -> bool | None:
        """Whether the fleet issued ``task_id`` (or a worker reported on it) within the record's
        lifetime; None when there is no way to tell (no Redis, or it failed)."""
        if self._redis is None:
            return None
        try:
            keys = (protocol.task_record_key(task_id), protocol.event_log_key(task_id))
            count = await self._redis.exists(*keys)
        except (redis.RedisError, OSError) as error:
            logger.warning("could not read the record of task %s: %s", task_id, error)
            return None
        return bool(count)

    async def page(self, tags: Iterable[str], limit: int, before: float | None) -> TaskPage:
        """The newest ``limit`` tasks of ``tags`` scheduled before ``before`` (None: now)."""
        if self._redis is None:
            return TaskPage((), None)
        newest = f"({before!r}" if before is not None else "+inf"
        ids: dict[str, float] = {}
        for tag in sorted(tags)[:MAX_LISTED_TAGS]:
            found = await self._redis.zrevrangebyscore(
                protocol.tagged_tasks_key(tag), newest, "-inf", start=0, num=limit + 1, withscores=True
            )
            for member, score in typing.cast(list[tuple[Any, Any]], found):
                ids[_text(member)] = float(score)
        ordered = sorted(ids.items(), key=lambda item: item[1], reverse=True)
        shown, more = ordered[:limit], len(ordered) > limit
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id, _ in shown:
                pipe.hgetall(protocol.task_record_key(task_id))
            fields = await pipe.execute() if shown else []
        records = tuple(_record(task_id, values) for (task_id, _), values in zip(shown, fields, strict=True))
        return TaskPage(records, shown[-1][1] if more and shown else None)


def _record(task_id: str, fields: dict[Any, Any]) -> TaskRecord:
    values = {_text(key): _text(value) for key, value in fields.items()}
    return TaskRecord(
        task_id=task_id,
        name=values.get("name") or None,
        state=values.get("state") or "PENDING",
        scheduled=_number(values.get("scheduled")),
        started=_number(values.get("started")),
        finished=_number(values.get("finished")),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
