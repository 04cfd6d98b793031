"""The relay of worker events from Redis to this gateway's Socket.IO clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
from aiohttp import web

from stirfried.server.app_keys import CONFIG, SOCKETIO

logger = logging.getLogger(__name__)


class RelayingRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, reporting each event it delivers locally."""

    def __init__(self, url: str, on_event: Callable[[str], None]) -> None:
        super().__init__(url)
        self._on_event = on_event

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        self._on_event(str(message.get("event")))
        await super()._handle_emit(message)


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
        await socket.close(wait=False, abort=True, reason=engine.reason.SERVER_DISCONNECT)
        # None ends Engine.IO's websocket writer, which then closes the
        # websocket instead of waiting for the client to.
        socket.queue.put_nowait(None)
