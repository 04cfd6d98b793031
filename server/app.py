"""``create_app``: the single entry point that builds a gateway, for the CLI and the tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import celery
from aiohttp import web

from stirfried.config import Config
from stirfried.server import event_relay, health
from stirfried.server.app_keys import CELERY, CONFIG, METRICS, SCHEDULER, SOCKETIO
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.example_page import example_page_routes
from stirfried.server.http_api import http_routes, json_errors
from stirfried.server.http_metrics import measure_requests, show_metrics
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.scheduler import TaskScheduler
from stirfried.server.socketio_api import SocketIOApi
from stirfried.server.socketio_server import create_socketio_server
from stirfried.settings import ConfigError

logger = logging.getLogger(__name__)

UNSAFE_SERIALIZERS = frozenset({"pickle", "application/x-python-serialize", "yaml"})


def create_app(config: Config) -> web.Application:
    """Build the gateway described by ``config``.

    Raises ConfigError (naming the key) for settings the gateway cannot honour.
    Nothing here does I/O: connections open in the application's cleanup
    context or on first use, and close at shutdown.
    """
    check_serializers(config)
    settings = config.stirfried
    if not settings.redis_url:
        logger.warning("stirfried_redis_url is not set: workers cannot send events to this gateway's clients")
    app = web.Application(middlewares=[measure_requests, json_errors])
    app[CONFIG] = config
    app[METRICS] = metrics = GatewayMetrics.create(settings.available_tasks)
    app[CELERY] = CeleryFacade(
        _celery_app(config), settings.executor_threads, settings.broker_timeout, metrics
    )
    app[SCHEDULER] = TaskScheduler(app[CELERY], settings, metrics)
    app.cleanup_ctx.append(_close_celery)
    app.cleanup_ctx.append(health.readiness_redis)
    app.add_routes(health.health_routes())
    if settings.metrics:
        app.add_routes([web.get("/metrics", show_metrics)])
    if settings.enable_http:
        app.add_routes(http_routes(settings))
    if settings.example_page:
        app.add_routes(example_page_routes(config))
    if settings.enable_socketio:
        sio = create_socketio_server(config, on_event=lambda name: metrics.events_relayed.labels(name).inc())
        sio.attach(app)
        SocketIOApi(sio, app[SCHEDULER], app[CELERY], settings).register()
        metrics.count_clients_with(lambda: len(sio.eio.sockets))
        app[SOCKETIO] = sio
        app.cleanup_ctx.append(event_relay.start_event_relay)
        app.on_shutdown.append(event_relay.disconnect_clients)
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


async def _shutdown_socketio(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SOCKETIO].shutdown()
