"""Build the ``socketio.AsyncServer`` from the ``socketio_*`` settings (checked; bad keys named)."""

from __future__ import annotations

import inspect
from typing import Any

import engineio
import socketio

from stirfried.config import SOCKETIO_PREFIX, Config
from stirfried.server.event_relay import RelayingRedisManager, TaskEventRelay
from stirfried.server.origins import OriginPolicy
from stirfried.server.socketio_packets import packet_class
from stirfried.settings import ConfigError

# Set by the gateway itself: the web framework, the Redis manager that shares
# events between gateway processes and workers, and the JSON codec that parses
# what clients send (socketio_packets: its packet class has it).
GATEWAY_OWNED_OPTIONS = frozenset({"async_mode", "client_manager", "json"})
# Decided by stirfried_cors_origins, for HTTP and Socket.IO alike.
ORIGIN_OPTIONS = frozenset({"cors_allowed_origins"})


def _accepted_options() -> frozenset[str]:
    # Options flow through AsyncServer (and its bases) into engineio's server.
    names: set[str] = set()
    for cls in (*socketio.AsyncServer.__mro__, *engineio.AsyncServer.__mro__):
        if "__init__" in vars(cls):
            names.update(
                name
                for name, parameter in inspect.signature(cls.__init__).parameters.items()
                if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and name != "self"
            )
    names.add("engineio_logger")
    return frozenset(names)


def socketio_options(config: Config) -> dict[str, Any]:
    """The ``AsyncServer`` keyword arguments, checked; ConfigError names a bad key."""
    accepted = _accepted_options()
    where = f"{config.source}: " if config.source else ""
    for key in config.socketio:
        if key in GATEWAY_OWNED_OPTIONS:
            raise ConfigError(f"{where}'{SOCKETIO_PREFIX}{key}' is set by Stirfried itself")
        if key in ORIGIN_OPTIONS:
            raise ConfigError(
                f"{where}'{SOCKETIO_PREFIX}{key}': list the origins in 'stirfried_cors_origins', "
                "which decides for HTTP and Socket.IO alike"
            )
        if key not in accepted:
            raise ConfigError(f"{where}unknown setting '{SOCKETIO_PREFIX}{key}'")
    if config.socketio.get("serializer", "default") not in ("default", "msgpack"):
        raise ConfigError(f"{where}'{SOCKETIO_PREFIX}serializer' must be default or msgpack")
    return dict(config.socketio)


def create_socketio_server(
    config: Config, relay: TaskEventRelay, origins: OriginPolicy
) -> socketio.AsyncServer:
    """An aiohttp-mode server; with ``stirfried_redis_url``, emits cross processes via Redis.

    Messages of python-socketio's Redis channel pass through ``relay``. Unless the
    ``socketio_*`` options say otherwise, ``origins`` decides which web origins
    may connect, and messages may be up to twice
    ``stirfried_max_request_bytes`` (handlers refuse those over it with a failed
    reply; Engine.IO drops a connection that sends more).
    """
    options = socketio_options(config)
    options["cors_allowed_origins"] = origins.for_engineio
    options.setdefault("max_http_buffer_size", 2 * config.stirfried.max_request_bytes)
    redis_url = config.stirfried.redis_url
    manager = RelayingRedisManager(redis_url, relay, config.stirfried.broker_timeout) if redis_url else None
    options["serializer"] = packet_class(
        options.get("serializer", "default"),
        binary_arguments=config.celery.get("task_serializer") == "msgpack",
        max_bytes=config.stirfried.max_request_bytes,
    )
    return socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, **options)
