"""Build the ``socketio.AsyncServer`` from the ``socketio_*`` settings."""

from __future__ import annotations

import inspect
from typing import Any

import engineio
import socketio

from stirfried.config import SOCKETIO_PREFIX, Config
from stirfried.settings import ConfigError

# Set by the gateway itself: the web framework, and the Redis manager that
# shares events between gateway processes and workers.
GATEWAY_OWNED_OPTIONS = frozenset({"async_mode", "client_manager"})


def _accepted_options() -> frozenset[str]:
    names: set[str] = set()
    for constructor in (socketio.AsyncServer.__init__, engineio.AsyncServer.__init__):
        names.update(
            name
            for name, parameter in inspect.signature(constructor).parameters.items()
            if parameter.kind is parameter.POSITIONAL_OR_KEYWORD and name != "self"
        )
    names.add("engineio_logger")
    return frozenset(names)


def socketio_options(config: Config) -> dict[str, Any]:
    """The ``AsyncServer`` keyword arguments, checked; ConfigError names a bad key."""
    accepted = _accepted_options()
    for key in config.socketio:
        if key in GATEWAY_OWNED_OPTIONS:
            raise ConfigError(f"{config.source}: '{SOCKETIO_PREFIX}{key}' is set by Stirfried itself")
        if key not in accepted:
            raise ConfigError(f"{config.source}: unknown setting '{SOCKETIO_PREFIX}{key}'")
    serializer = config.socketio.get("serializer", "default")
    if serializer not in ("default", "msgpack"):
        raise ConfigError(
            f"{config.source}: '{SOCKETIO_PREFIX}serializer' must be default or msgpack"
        )
    return dict(config.socketio)


def create_socketio_server(config: Config) -> socketio.AsyncServer:
    """An aiohttp-mode server; with ``stirfried_redis_url``, events cross processes via Redis."""
    options = socketio_options(config)
    redis_url = config.stirfried.redis_url
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    return socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, **options)
