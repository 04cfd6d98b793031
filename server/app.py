"""``create_app``: the single entry point that builds a gateway, for the CLI and the tests.

``create_app`` does no I/O: it checks the configuration, builds the objects that
hold no connection, and registers one ``cleanup_ctx`` generator per resource.
Each generator opens its resource, yields while the gateway serves, and closes
it, so start-up and shutdown sit side by side. aiohttp runs them in the order
below at start-up and in reverse at shutdown: clients are dropped first, then
the relay, the Redis clients and the Celery threads.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable

import celery
from aiohttp import web

from stirfried.config import Config
from stirfried.server import health, redis_clients
from stirfried.server.app_keys import (
    ACCESS,
    BUDGET,
    CALLERS,
    CATALOG,
    CELERY,
    CHANNELS,
    CONFIG,
    CONNECTIONS,
    METRICS,
    OPERATIONS,
    REDIS,
    SCHEDULER,
    SOCKETIO,
    SUBSCRIPTIONS,
)
from stirfried.server.caller import Authenticator, Callers
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.development.example_page import example_page_routes
from stirfried.server.event_log import EventLog
from stirfried.server.event_relay import RelayingRedisManager, TaskEventRelay
from stirfried.server.http_api import http_routes, json_errors
from stirfried.server.idempotency import IdempotencyKeys
from stirfried.server.limits import ConnectionCounter, RateLimiter
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.origins import OriginPolicy
from stirfried.server.scheduling import TaskScheduler
from stirfried.server.session_guard import SessionGuard
from stirfried.server.socketio_api import SocketIOApi, drop_connections
from stirfried.server.socketio_options import create_socketio_server
from stirfried.server.subscriptions import TaskSubscriptions
from stirfried.server.task_access import TaskAccess, subscription_tokens
from stirfried.server.task_catalog import TaskCatalog
from stirfried.server.task_channels import TaskChannels
from stirfried.server.task_operations import TaskOperations
from stirfried.server.task_records import TaskRecords
from stirfried.settings import ConfigError

logger = logging.getLogger(__name__)

UNSAFE_SERIALIZERS = frozenset({"pickle", "application/x-python-serialize", "yaml"})
CleanupContext = Callable[[web.Application], AsyncIterator[None]]
ShutdownHook = Callable[[web.Application], Awaitable[None]]
REDIS_BROKER_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel", "valkey", "valkeys"})


def create_app(config: Config) -> web.Application:
    """Build the gateway described by ``config``.

    Raises ConfigError (naming the key) for settings the gateway cannot honour.
    """
    check_serializers(config)
    check_access_settings(config)
    settings = config.stirfried
    if not settings.redis_url and not settings.embedded_redis:
        logger.warning("stirfried_redis_url is not set: workers cannot send events to this gateway's clients")
    origins = OriginPolicy(settings.cors_origins)
    metrics = GatewayMetrics.create(settings.available_tasks)
    callers = Callers(
        Authenticator(settings.auth_secret, settings.anonymous),
        settings.trusted_proxies,
        settings.header_task_map,
    )
    # The Socket.IO server also carries the relay of worker events, which SSE
    # streams need even when the Socket.IO API itself is switched off.
    relay = TaskEventRelay(settings.progress_rate, metrics.count_event)
    sio = create_socketio_server(config, relay, origins)
    sessions = SessionGuard(sio, callers, settings.max_connections_per_ip)
    app = web.Application(
        middlewares=[metrics.measure_requests(), json_errors, origins.middleware(), sessions.middleware()],
        client_max_size=settings.max_request_bytes,
    )
    app.on_response_prepare.append(origins.add_headers)
    app[CONFIG] = config
    app[METRICS] = metrics
    app[CALLERS] = callers
    app[SOCKETIO] = sio

    app.add_routes(health.health_routes())
    if settings.metrics:
        app.add_routes(metrics.routes())
    if settings.enable_http:
        app.add_routes(http_routes(settings))
    if settings.example_page:
        app.add_routes(example_page_routes(config))
    if settings.enable_socketio:
        sio.attach(app)

    app.cleanup_ctx.extend(
        [
            celery_facade,
            redis_client,
            health.readiness_redis,
            task_channels(relay),
            task_services(relay),
            socketio_server(relay, sessions),
        ]
    )
    # Before aiohttp waits for open requests: a websocket or an SSE stream would
    # hold the shutdown until its timeout. Clients reconnect (elsewhere) and resume.
    app.on_shutdown.append(_drop_clients(relay))
    return app


async def celery_facade(app: web.Application) -> AsyncIterator[None]:
    """The Celery facade and its thread pool: publishes in flight finish before it closes."""
    config = app[CONFIG]
    settings = config.stirfried
    # Built in a thread: Celery's configuration loader touches the file system.
    celery_app = await asyncio.to_thread(gateway_celery_app, config)
    app[CELERY] = facade = CeleryFacade(
        celery_app, settings.executor_threads, settings.broker_timeout, app[METRICS]
    )
    yield
    await facade.close()


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """The one Redis client for event logs and task tags (it connects on first use)."""
    settings = app[CONFIG].stirfried
    if not settings.redis_url:
        yield
        return
    app[REDIS] = client = redis_clients.open_client(
        settings.redis_url, settings.broker_timeout, settings.redis_cluster
    )
    yield
    await client.aclose()


def task_channels(relay: TaskEventRelay) -> CleanupContext:
    """The subscriber connection(s) to the channels of the tasks this gateway's clients follow."""

    async def subscribe(app: web.Application) -> AsyncIterator[None]:
        settings = app[CONFIG].stirfried
        if not settings.redis_url:
            relay.serve(app[SOCKETIO], None)
            yield
            return
        channels = TaskChannels(settings.redis_url, settings.redis_cluster, settings.broker_timeout)
        app[CHANNELS] = channels
        relay.serve(app[SOCKETIO], channels)
        await channels.open(relay.relay_live)
        yield
        await channels.close()

    return subscribe


def task_services(relay: TaskEventRelay) -> CleanupContext:
    """Access checks, scheduling and subscriptions, built on the resources opened before."""

    async def build(app: web.Application) -> AsyncIterator[None]:
        settings = app[CONFIG].stirfried
        client = app.get(REDIS)
        tokens = subscription_tokens(settings.token_secret, settings.auth_secret)
        app[ACCESS] = access = TaskAccess(app[CALLERS].authenticator, tokens, client)
        app[BUDGET] = budget = RateLimiter(settings.rate_limit, settings.rate_burst)
        app[CONNECTIONS] = ConnectionCounter(settings.max_connections_per_ip)
        app[CATALOG] = catalog = TaskCatalog(client, settings.catalog_ttl)
        records = TaskRecords(client, settings.event_log_ttl)
        event_log = EventLog(client) if client is not None else None
        app[SUBSCRIPTIONS] = subscriptions = TaskSubscriptions(
            app[SOCKETIO], relay, event_log, app[CELERY], settings, app.get(CHANNELS)
        )
        idempotency = IdempotencyKeys(client, settings.idempotency_window, settings.broker_timeout)
        app[SCHEDULER] = TaskScheduler(
            app[CELERY], settings, app[METRICS], budget, catalog, records, idempotency, subscriptions
        )
        app[OPERATIONS] = TaskOperations(app[CELERY], access, budget, catalog, records, settings)
        await catalog.refresh()
        refreshing = asyncio.create_task(catalog.run())
        yield
        refreshing.cancel()

    return build


def socketio_server(relay: TaskEventRelay, sessions: SessionGuard) -> CleanupContext:
    """The Socket.IO handlers, the Redis listener and the session sweep; at shutdown, the
    server, the relay and the sweep."""

    async def serve(app: web.Application) -> AsyncIterator[None]:
        settings = app[CONFIG].stirfried
        sio = app[SOCKETIO]
        if settings.enable_socketio:
            SocketIOApi(
                sio,
                app[SCHEDULER],
                app[OPERATIONS],
                app[SUBSCRIPTIONS],
                app[CALLERS],
                app[ACCESS],
                app[BUDGET],
                app[CONNECTIONS],
                settings,
            ).register()
            app[METRICS].count_clients_with(lambda: len(sio.eio.sockets))
        if isinstance(sio.manager, RelayingRedisManager):
            await sio.manager.listen_now(settings.broker_timeout)
        sweeping = asyncio.create_task(sessions.run())
        yield
        sweeping.cancel()
        await sio.shutdown()
        relay.close()

    return serve


def _drop_clients(relay: TaskEventRelay) -> ShutdownHook:
    async def drop(app: web.Application) -> None:
        relay.close_streams()
        await drop_connections(app[SOCKETIO])

    return drop


def check_access_settings(config: Config) -> None:
    """A gateway serves either token holders or, when the config says so, anyone."""
    settings = config.stirfried
    if settings.refuse_unserved_tasks and not settings.redis_url and not settings.embedded_redis:
        raise ConfigError(
            f"{config.source}: 'stirfried_refuse_unserved_tasks' needs 'stirfried_redis_url' (workers "
            "announce the tasks they serve there); set it, or set 'stirfried_refuse_unserved_tasks: false'"
        )
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
    backend_url = str(app.conf.result_backend or "")
    if urllib.parse.urlsplit(backend_url).scheme in REDIS_BROKER_SCHEMES:
        # The same for the Redis result backend, whose socket timeout is 120 s by default:
        # a hung backend would hold every read for two minutes.
        for key in ("redis_socket_timeout", "redis_socket_connect_timeout"):
            if key not in config.celery:
                app.conf[key] = config.stirfried.broker_timeout
    return app
