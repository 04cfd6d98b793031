"""A python-socketio client that records events, for assertions in tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import socketio

Event = tuple[str, Any]


class EventClient:
    """A real ``socketio.AsyncClient`` plus a log of every event it received."""

    def __init__(
        self,
        headers: dict[str, str] | None = None,
        serializer: str = "default",
        reconnection: bool = False,
        auth: dict[str, str] | None = None,
    ) -> None:
        self.sio = socketio.AsyncClient(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1, serializer=serializer
        )
        self.headers = headers or {}
        self.auth = auth
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self.sio.on("*", self._record)

    async def _record(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        self._changed.set()

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url, headers=self.headers, auth=self.auth, transports=["websocket"], wait_timeout=10
        )

    async def disconnect(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    @property
    def sid(self) -> str:
        sid = self.sio.get_sid()
        assert sid is not None
        return sid

    async def call(self, event: str, *args: Any, timeout: float = 15) -> Any:
        """Emit ``event`` with ``args`` (any number) and return the server's acknowledgement."""
        data = args[0] if len(args) == 1 else (tuple(args) if args else None)
        return await self.sio.call(event, data, timeout=timeout)

    async def send_task(self, task: dict[str, Any]) -> str:
        reply = await self.call("send_task", task)
        assert reply["status"] == "success", reply
        task_id: str = reply["data"]
        return task_id

    def events_for(self, task_id: str) -> list[Event]:
        return [
            (name, data)
            for name, data in self.events
            if isinstance(data, dict) and data.get("task_id") == task_id
        ]

    async def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 20) -> list[Event]:
        """Wait until ``predicate(self.events)`` holds; fail with the events seen."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; events so far: {self.events!r}")
            self._changed.clear()
            # Wake on new events, and now and then for conditions events do not signal.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
        return self.events

    async def wait_for_event(self, name: str, task_id: str, timeout: float = 20) -> Any:
        """Wait for the event ``name`` of ``task_id``; return its payload."""
        await self.wait_for(lambda _: any(n == name for n, _d in self.events_for(task_id)), timeout)
        return next(data for n, data in self.events_for(task_id) if n == name)
