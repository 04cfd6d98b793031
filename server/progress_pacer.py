"""Progress pacing: at most N ``on_progress`` events per second per task reach clients.

A progress event that comes too soon after the last one sent is held; a newer
one replaces it (latest wins). The held event goes out when its slot comes, or
right before the task's next other event, so the last progress always arrives
and never after the result. Only what this gateway delivers is thinned: the
event log keeps every event.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from stirfried import protocol

M = TypeVar("M")

# Tasks whose pacing is remembered; the oldest is forgotten beyond this (a task
# whose worker died never sends its final event).
MAX_TRACKED_TASKS = 100_000


@dataclasses.dataclass
class _Pace(Generic[M]):
    last_sent: float = float("-inf")
    held: M | None = None
    timer: asyncio.TimerHandle | None = None


class ProgressPacer(Generic[M]):
    """Paces the progress events of each task; ``deliver`` sends one message on."""

    def __init__(self, per_second: float, deliver: Callable[[M], Awaitable[None]]) -> None:
        self._interval = 1.0 / per_second
        self._deliver = deliver
        self._paces: collections.OrderedDict[str, _Pace[M]] = collections.OrderedDict()
        # Serializes deliveries so a held event sent by its timer can never
        # overtake, or be overtaken by, the events around it.
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()

    async def offer(self, task_id: str, event: str, message: M) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            pace = self._paces.get(task_id)
            if event != protocol.ON_PROGRESS:
                if pace is not None:
                    await self._send_held(pace)
                    if event in protocol.FINAL_EVENTS:
                        self._forget(task_id)
                await self._deliver(message)
                return
            if pace is None:
                pace = self._paces[task_id] = _Pace()
                while len(self._paces) > MAX_TRACKED_TASKS:
                    self._forget(next(iter(self._paces)))
            now = loop.time()
            if pace.held is None and now - pace.last_sent >= self._interval:
                pace.last_sent = now
                await self._deliver(message)
                return
            pace.held = message
            if pace.timer is None:
                pace.timer = loop.call_at(pace.last_sent + self._interval, self._on_timer, task_id)

    def _on_timer(self, task_id: str) -> None:
        pace = self._paces.get(task_id)
        if pace is not None:
            pace.timer = None
            flush = asyncio.get_running_loop().create_task(self._flush(task_id))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self, task_id: str) -> None:
        async with self._lock:
            pace = self._paces.get(task_id)
            if pace is not None:
                await self._send_held(pace)

    async def _send_held(self, pace: _Pace[M]) -> None:
        if pace.timer is not None:
            pace.timer.cancel()
            pace.timer = None
        if pace.held is not None:
            message, pace.held = pace.held, None
            pace.last_sent = asyncio.get_running_loop().time()
            await self._deliver(message)

    def _forget(self, task_id: str) -> None:
        pace = self._paces.pop(task_id, None)
        if pace is not None and pace.timer is not None:
            pace.timer.cancel()

    def close(self) -> None:
        for task_id in list(self._paces):
            self._forget(task_id)
