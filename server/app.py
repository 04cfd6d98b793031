"""``create_app``: the single entry point that builds a gateway, for the CLI and the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import celery
import socketio
from aiohttp import web

from stirfried.config import Config
from stirfried.server.app_keys import CELERY, CONFIG, SOCKETIO
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.example_page import example_page_routes
from stirfried.server.http_api import http_routes, json_errors
from stirfried.server.socketio_api import SocketIOApi
from stirfried.server.socketio_server import create_socketio_server
from stirfried.settings import ConfigError

logger = logging.getLogger(__name__)

UNSAFE_SERIALIZERS = frozenset({"pickle", "application/x-python-serialize", "yaml"})


def create_app(config: Config) -> web.Application:
    """Build the gateway described by ``config``.

    Raises ConfigError (naming the key) for settings the gateway cannot honour.
    Nothing here does I/O: connections open on first use and close in the
    application's cleanup context.
    """
    check_serializers(config)
    settings = config.stirfried
    if not settings.redis_url:
        logger.warning("stirfried_redis_url is not set: workers cannot send events to this gateway's clients")
    app = web.Application(middlewares=[json_errors])
    app[CONFIG] = config
    app[CELERY] = CeleryFacade(
        _celery_app(config), threads=settings.executor_threads, timeout=settings.broker_timeout
    )
    app.cleanup_ctx.append(_close_celery)
    if settings.enable_http:
        app.add_routes(http_routes(settings))
    if settings.example_page:
        app.add_routes(example_page_routes(config))
    if settings.enable_socketio:
        sio = create_socketio_server(config)
        sio.attach(app)
        SocketIOApi(sio, app[CELERY], settings).register()
        app[SOCKETIO] = sio
        app.cleanup_ctx.append(_start_event_relay)
        app.on_shutdown.append(_disconnect_socketio_clients)
        app.cleanup_ctx.append(_shutdown_socketio)
    return app


def check_serializers(config: Config) -> None:
    """Refuse pickle (and yaml) anywhere Celery would accept or produce them.

    A gateway publishes what browsers send; an unsafe serializer would let a
    payload execute code on a worker.
    """
    for key in ("accept_content", "result_accept_content", "task_serializer", "result_serializer"):
        value = config.celery.get(key)
        names = [value] if isinstance(value, str) else list(value or [])
        unsafe = UNSAFE_SERIALIZERS.intersection(names)
        if unsafe:
            raise ConfigError(
                f"{config.source}: '{key}' contains {sorted(unsafe)[0]!r}: the gateway refuses "
                "serializers that can execute code"
            )


def _celery_app(config: Config) -> celery.Celery:
    app = celery.Celery("stirfried-gateway", set_as_current=False)
    app.conf.update(config.celery)
    return app


async def _close_celery(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CELERY].close()


async def _start_event_relay(app: web.Application) -> AsyncIterator[None]:
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


async def _disconnect_socketio_clients(app: web.Application) -> None:
    """Close every client's connection so that it reconnects, e.g. to another gateway.

    An open websocket would otherwise hold the shutdown until aiohttp's timeout.
    Closing at the Engine.IO level (not a Socket.IO "server disconnect") is what
    makes standard clients reconnect.
    """
    engine = app[SOCKETIO].eio
    for socket in list(engine.sockets.values()):
        # Queue the close packet without waiting for a client to fetch it (a
        # long-polling client that went away never would); the None after it
        # ends Engine.IO's websocket writer, which then closes the websocket
        # instead of waiting for the browser to.
        await socket.close(wait=False, reason=engine.reason.SERVER_DISCONNECT)
        socket.queue.put_nowait(None)


async def _shutdown_socketio(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SOCKETIO].shutdown()
