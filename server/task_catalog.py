"""What live workers serve, as their announcements say (:mod:`stirfried.catalog`).

The gateway keeps a snapshot in memory, so a submit of a served task costs no
Redis round trip: it is read again every ``stirfried_catalog_ttl / 3`` seconds
in the background, and afresh when a client names a task the snapshot lacks, so
a worker that announced a moment ago is found. (Each such miss costs one small
read, shared by the misses that arrive meanwhile; the scheduler charges the
client's rate budget before it asks, so made-up names cannot drive reads
beyond the rate limit.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio

from stirfried import protocol

logger = logging.getLogger(__name__)

# ``GET /tasks`` reads again when its snapshot is older than this.
MAX_LISTING_AGE = 1.0

# KEYS: workers (zset), announcements (hash). Every entry, with its expiry.
READ_SCRIPT = """
local workers = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
if #workers == 0 then return {} end
local names = {}
for index = 1, #workers, 2 do names[#names + 1] = workers[index] end
return {workers, redis.call('HMGET', KEYS[2], unpack(names))}
"""


@dataclasses.dataclass(frozen=True)
class Announcement:
    """One worker's announcement: until when it holds, and what it serves where."""

    expires: float
    digest: str
    queues: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ServedTask:
    """A task as its workers describe it, with how many live workers serve it."""

    name: str
    entry: Mapping[str, Any]
    """The worker's description: ``doc``, ``signature``, ``parameters``, ``queue``."""
    queues: frozenset[str]
    """The queues of the workers that serve it."""
    workers: int

    def describe(self) -> dict[str, Any]:
        """The entry of ``GET /tasks`` and ``list_tasks``."""
        return {
            "name": self.name,
            "doc": self.entry.get("doc"),
            "signature": self.entry.get("signature"),
            "parameters": self.entry.get("parameters"),
            "queues": sorted(self.queues),
            "workers": self.workers,
        }


class TaskCatalog:
    """The tasks live workers announce, kept fresh in memory."""

    def __init__(self, client: redis.asyncio.Redis | None, ttl: int) -> None:
        self._redis = client
        self._interval = max(0.5, ttl / 3)
        self._script = client.register_script(READ_SCRIPT) if client is not None else None
        self._tasks: dict[str, ServedTask] = {}
        self._workers: dict[str, Announcement] = {}
        """Live workers by hostname, as last read (kept until expiry if Redis loses them)."""
        self._lists: dict[str, list[dict[str, Any]]] = {}
        """Task lists by digest: identical workers share one, fetched once."""
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None
        self._reading_since = 0.0

    @property
    def available(self) -> bool:
        """Whether workers can announce at all (the gateway has a Stirfried Redis)."""
        return self._redis is not None

    def tasks(self) -> list[ServedTask]:
        return [self._tasks[name] for name in sorted(self._tasks)]

    async def served(self, name: str) -> ServedTask | None:
        """The live workers' description of ``name``; None when none serves it, even after
        a read that started after this call."""
        found = self._tasks.get(name)
        if found is None:
            await self.refresh()
            found = self._tasks.get(name)
        return found

    async def refresh_if_stale(self) -> None:
        """Read again unless the snapshot is younger than :data:`MAX_LISTING_AGE`."""
        if time.monotonic() - self._read_at >= MAX_LISTING_AGE:
            await self.refresh()

    async def run(self) -> None:
        """Read the catalog now and then every interval, until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)

    async def refresh(self) -> None:
        """Read the announcements again; callers that arrive while a read they can trust
        (one that started after they did) is under way share it."""
        arrived = time.monotonic()
        while True:
            reading = self._reading
            if reading is None or reading.done():
                self._reading = reading = asyncio.create_task(self._read())
                self._reading_since = time.monotonic()
                await asyncio.shield(reading)
                return
            await asyncio.shield(reading)
            if self._reading_since >= arrived:
                return
            # That read began before this call: the next one (shared by all who waited) counts.

    async def _read(self) -> None:
        if self._redis is None or self._script is None:
            return
        try:
            read = _announcements(
                await self._script(keys=[protocol.CATALOG_WORKERS_KEY, protocol.CATALOG_ANNOUNCEMENTS_KEY])
            )
            now = time.time()
            # Expired: gone. Missing from the read although not
            # expired: Redis lost it (a restart); the worker's next refresh restores it.
            workers = {
                name: announcement
                for name, announcement in {**self._workers, **read}.items()
                if announcement.expires > now
            }
            missing = sorted({a.digest for a in workers.values()} - set(self._lists))
            if missing:
                values = await self._redis.mget([protocol.catalog_tasks_key(digest) for digest in missing])
                for digest, value in zip(missing, values, strict=True):
                    if value is not None:
                        self._lists[digest] = json.loads(value)
        except (redis.RedisError, OSError, ValueError) as error:
            # Keep the last snapshot: a Redis hiccup must not make every task unknown.
            logger.warning("could not read the task catalog: %s", error)
            return
        finally:
            self._read_at = time.monotonic()
        self._workers = workers
        self._tasks = _merge(workers.values(), self._lists)
        live = {announcement.digest for announcement in workers.values()}
        self._lists = {digest: tasks for digest, tasks in self._lists.items() if digest in live}


def _announcements(reply: Any) -> dict[str, Announcement]:
    """Each worker's announcement, from :data:`READ_SCRIPT`'s reply."""
    if not reply:
        return {}
    workers, values = reply
    found = {}
    for index, value in enumerate(values):
        if value is None:
            continue
        name, expires = _text(workers[2 * index]), float(workers[2 * index + 1])
        announcement = json.loads(value)
        digest = announcement.get("digest")
        queues = announcement.get("queues") or []
        if isinstance(digest, str):
            found[name] = Announcement(expires, digest, tuple(q for q in queues if isinstance(q, str)))
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _merge(
    announcements: Iterable[Announcement], lists: Mapping[str, list[dict[str, Any]]]
) -> dict[str, ServedTask]:
    tasks: dict[str, ServedTask] = {}
    for announcement in announcements:
        queues = announcement.queues
        for entry in lists.get(announcement.digest, []):
            name = entry.get("name")
            if not isinstance(name, str) or name.startswith("celery."):
                continue
            known = tasks.get(name)
            tasks[name] = ServedTask(
                name,
                entry,
                (known.queues if known else frozenset()) | frozenset(queues),
                (known.workers if known else 0) + 1,
            )
    return tasks
