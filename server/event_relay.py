"""The relay of worker events from Redis to this gateway's Socket.IO clients and SSE streams.

python-socketio's ``AsyncRedisManager`` receives every event workers publish
(one JSON decode per message) and delivers it to the rooms it names. Events of
a task (those addressed to its task room) first pass through the optional
progress coalescer and the task's subscriptions, which may hold them back for
clients whose replay is still running.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web
from socketio.packet import Packet

from stirfried import events
from stirfried.server.app_keys import CONFIG, SOCKETIO
from stirfried.server.coalescing import ProgressCoalescer
from stirfried.server.event_log import TaskEvent
from stirfried.server.subscriptions import TaskSubscriptions

logger = logging.getLogger(__name__)

Message = dict[str, Any]


class RelayingRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, handing each event to the gateway's relay first."""

    def __init__(self, url: str, on_event: Callable[[str], None]) -> None:
        super().__init__(url)
        self._on_event = on_event
        self.relay: Callable[[Message], Awaitable[None]] | None = None

    async def _handle_emit(self, message: Message) -> None:
        self._on_event(str(message.get("event")))
        if self.relay is None:
            await super()._handle_emit(message)
        else:
            await self.relay(message)

    async def deliver(self, message: Message) -> None:
        """Deliver an emit message to this process's clients, as python-socketio would."""
        await super()._handle_emit(message)


def task_event_of(message: Message) -> tuple[str, TaskEvent] | None:
    """The task id and event of a worker's emit message; None for any other message."""
    rooms = message.get("room")
    if not isinstance(rooms, list):
        return None
    task_id = next(
        (found for room in rooms if isinstance(room, str) and (found := events.task_id_of_room(room))), None
    )
    data = message.get("data")
    if task_id is None or not isinstance(data, list) or not data:
        return None
    payload = data[0]
    if message.get("binary"):
        payload = Packet.reconstruct_binary(payload, [base64.b64decode(item) for item in data[1:]])
    if not isinstance(payload, dict):
        return None
    event_id = payload.get(events.EVENT_ID)
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        return None
    return task_id, TaskEvent(event_id, str(message.get("event")), payload)


class TaskEventRelay:
    """Routes task events through progress coalescing and the task's subscriptions."""

    def __init__(
        self,
        subscriptions: TaskSubscriptions,
        deliver: Callable[[Message], Awaitable[None]],
        progress_rate: float,
    ) -> None:
        self._subscriptions = subscriptions
        self._deliver = deliver
        self._coalescer: ProgressCoalescer[tuple[str, TaskEvent, Message]] | None = (
            ProgressCoalescer(progress_rate, self._send) if progress_rate > 0 else None
        )

    async def relay(self, message: Message) -> None:
        found = task_event_of(message)
        if found is None:
            await self._deliver(message)
            return
        task_id, event = found
        if self._coalescer is None:
            await self._send((task_id, event, message))
        else:
            await self._coalescer.offer(task_id, event.name, (task_id, event, message))

    async def _send(self, routed: tuple[str, TaskEvent, Message]) -> None:
        task_id, event, message = routed
        held_for = self._subscriptions.live(task_id, event)
        if held_for:
            message = {**message, "skip_sid": held_for}
        await self._deliver(message)

    def close(self) -> None:
        if self._coalescer is not None:
            self._coalescer.close()


async def start_event_relay(app: web.Application) -> AsyncIterator[None]:
    """Subscribe to the Redis event channel before the first client can connect.

    python-socketio starts its pub/sub listener on the first connection; a task
    that finished quickly could then publish its first events before the
    subscription exists, and they would be lost.
    """
    sio = app[SOCKETIO]
    manager = sio.manager
    if isinstance(manager, socketio.AsyncRedisManager) and not sio.manager_initialized:
        sio.manager_initialized = True
        manager.initialize()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + app[CONFIG].stirfried.broker_timeout
        while not (manager.pubsub is not None and manager.pubsub.subscribed):
            if loop.time() > deadline:
                logger.warning("not yet subscribed to Redis events; the relay keeps retrying")
                break
            await asyncio.sleep(0.01)
    yield


async def disconnect_clients(app: web.Application) -> None:
    """Drop every client's connection so that it reconnects, e.g. to another gateway.

    An open websocket would otherwise hold the shutdown until aiohttp's timeout.
    The transport is closed without Engine.IO's close packet: python-socketio
    clients take that packet as a deliberate disconnect and stay away, while
    a lost transport makes every standard client reconnect.
    """
    engine = app[SOCKETIO].eio
    for socket in list(engine.sockets.values()):
        await drop_transport(engine, socket)


async def drop_transport(engine: Any, socket: Any) -> None:
    """Close one Engine.IO connection as a lost network would: its client reconnects."""
    await socket.close(wait=False, abort=True, reason=engine.reason.SERVER_DISCONNECT)
    # None ends Engine.IO's websocket writer, which then closes the
    # websocket instead of waiting for the client to.
    socket.queue.put_nowait(None)
