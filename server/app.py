"""``create_app``: the single entry point that builds a gateway, for the CLI and the tests."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterator

import celery
import redis.asyncio
from aiohttp import web

from stirfried.config import Config
from stirfried.server import event_relay, health
from stirfried.server.access import TaskAccess
from stirfried.server.app_keys import (
    ACCESS,
    AUTH,
    CELERY,
    CONFIG,
    METRICS,
    SCHEDULER,
    SOCKETIO,
    SUBSCRIPTIONS,
    TOKENS,
)
from stirfried.server.auth import Authenticator
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.event_log import EventLog
from stirfried.server.example_page import example_page_routes
from stirfried.server.http_api import http_routes, json_errors
from stirfried.server.http_metrics import measure_requests, show_metrics
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.origins import OriginPolicy
from stirfried.server.scheduler import TaskScheduler
from stirfried.server.socketio_api import SocketIOApi
from stirfried.server.socketio_server import create_socketio_server
from stirfried.server.subscriptions import TaskSubscriptions
from stirfried.server.tokens import SubscriptionTokens
from stirfried.settings import ConfigError, StirfriedSettings

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
    if not settings.redis_url and not settings.embedded_redis:
        logger.warning("stirfried_redis_url is not set: workers cannot send events to this gateway's clients")
    check_access_settings(config)
    origins = OriginPolicy(settings.cors_origins)
    app = web.Application(
        middlewares=[measure_requests, json_errors, origins.middleware()],
        client_max_size=settings.max_request_bytes,
    )
    app.on_response_prepare.append(origins.add_headers)
    app[CONFIG] = config
    app[METRICS] = metrics = GatewayMetrics.create(settings.available_tasks)
    app[CELERY] = CeleryFacade(
        gateway_celery_app(config), settings.executor_threads, settings.broker_timeout, metrics
    )
    # Without a token secret of its own, a fleet that shares its auth secret shares
    # subscription tokens too (the HMAC input is domain-separated from JWTs).
    app[TOKENS] = SubscriptionTokens(settings.token_secret or settings.auth_secret)
    app[AUTH] = Authenticator(settings.auth_secret, settings.anonymous)
    # One client for the event log and task tags; it connects on first use.
    redis_client = _redis_client(settings)
    app[ACCESS] = TaskAccess(app[AUTH], app[TOKENS], redis_client, settings.event_log_ttl)
    app[SCHEDULER] = TaskScheduler(app[CELERY], settings, metrics, app[ACCESS])
    app.cleanup_ctx.append(_close_celery)
    app.cleanup_ctx.append(health.readiness_redis)
    app.add_routes(health.health_routes())
    if settings.metrics:
        app.add_routes([web.get("/metrics", show_metrics)])
    if settings.enable_http:
        app.add_routes(http_routes(settings))
    if settings.example_page:
        app.add_routes(example_page_routes(config))
    # The Socket.IO server also carries the relay of worker events, which SSE
    # streams need even when the Socket.IO API itself is switched off.
    sio = create_socketio_server(config, on_event=metrics.count_event, origins=origins)
    app[SOCKETIO] = sio
    event_log = EventLog(redis_client) if redis_client is not None else None
    app[SUBSCRIPTIONS] = subscriptions = TaskSubscriptions(sio, event_log, app[CELERY], settings)
    if isinstance(sio.manager, event_relay.RelayingRedisManager):
        relay = event_relay.TaskEventRelay(subscriptions, sio.manager.deliver, settings.progress_rate)
        sio.manager.relay = relay.relay
        app.on_cleanup.append(lambda _app: _close_relay(relay))
    if settings.enable_socketio:
        sio.attach(app)
        SocketIOApi(
            sio, app[SCHEDULER], app[CELERY], subscriptions, app[TOKENS], app[AUTH], app[ACCESS], settings
        ).register()
        metrics.count_clients_with(lambda: len(sio.eio.sockets))
    app.cleanup_ctx.append(event_relay.start_event_relay)
    app.on_shutdown.append(_end_streams)
    app.on_shutdown.append(event_relay.disconnect_clients)
    app.cleanup_ctx.append(_shutdown_socketio)
    app.cleanup_ctx.append(_close_event_log)
    return app


def check_access_settings(config: Config) -> None:
    """A gateway serves either token holders or, when the config says so, anyone."""
    settings = config.stirfried
    if not settings.anonymous and not settings.auth_secret:
        raise ConfigError(
            f"{config.source}: set 'stirfried_auth_secret' (or STIRFRIED_AUTH_SECRET) so clients can "
            "authenticate, or 'stirfried_anonymous: true' to serve anyone who can reach the gateway"
        )


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


REDIS_BROKER_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel", "valkey", "valkeys"})


def gateway_celery_app(config: Config) -> celery.Celery:
    """The gateway's Celery app: the config's Celery keys, plus socket timeouts on a Redis broker."""
    app = celery.Celery("stirfried-gateway", set_as_current=False)
    app.conf.update(config.celery)
    broker_url = str(app.conf.broker_url or "").split(";")[0]
    if urllib.parse.urlsplit(broker_url).scheme in REDIS_BROKER_SCHEMES:
        # kombu's Redis transport waits forever on a broker that stops answering (no
        # socket timeouts by default), which would hold every publish thread; the
        # gateway's own timeout is the natural bound. Options set in the config win.
        options = dict(app.conf.broker_transport_options or {})
        options.setdefault("socket_timeout", config.stirfried.broker_timeout)
        options.setdefault("socket_connect_timeout", config.stirfried.broker_timeout)
        app.conf.broker_transport_options = options
    return app


async def _close_celery(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CELERY].close()


def _redis_client(settings: StirfriedSettings) -> redis.asyncio.Redis | None:
    if not settings.redis_url:
        return None
    return redis.asyncio.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.broker_timeout,
        socket_timeout=settings.broker_timeout,
    )


async def _close_event_log(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SUBSCRIPTIONS].close()


async def _end_streams(app: web.Application) -> None:
    app[SUBSCRIPTIONS].close_streams()


async def _close_relay(relay: event_relay.TaskEventRelay) -> None:
    relay.close()


async def _shutdown_socketio(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SOCKETIO].shutdown()
