"""One awaited task's events, each once, until its final event (``stirfried.client`` uses it)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from stirfried import protocol
from stirfried.client_types import Progress

ProgressCallback = Callable[[Progress], Awaitable[None] | None]


class TaskWatch:
    """Collects one task's events until its final one (``on_return``, ``on_revoked``), each
    ``event_id`` once; ``done`` then holds that event's name and payload."""

    def __init__(self, on_progress: ProgressCallback | None, token: str | None, after: int = 0) -> None:
        self.on_progress = on_progress
        self.token = token
        self.last_event_id = after
        self.epoch: str | None = None
        """The epoch of the log that numbered the events seen (a new one restarts the count)."""
        self.done: asyncio.Future[tuple[str, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.einfo: str | None = None
        self.task_name: str | None = None

    async def handle(self, event: str, payload: dict[str, Any]) -> None:
        if isinstance(payload.get("task_name"), str):
            self.task_name = payload["task_name"]
        event_id = payload.get(protocol.EVENT_ID)
        epoch = payload.get(protocol.EPOCH)
        if isinstance(event_id, int):
            new_log = isinstance(epoch, str) and self.epoch is not None and epoch != self.epoch
            if event_id <= self.last_event_id and not new_log:
                return  # already seen (delivered live and replayed)
            self.last_event_id = event_id
            if isinstance(epoch, str):
                self.epoch = epoch
        if event == protocol.ON_PROGRESS and self.on_progress is not None:
            outcome = self.on_progress(
                Progress(payload["task_id"], payload["current"], payload["total"], payload["info"])
            )
            if inspect.isawaitable(outcome):
                await outcome
        elif event == protocol.ON_FAILURE:
            self.einfo = payload.get("einfo")
        elif event in protocol.FINAL_EVENTS and not self.done.done():
            self.done.set_result((event, payload))
