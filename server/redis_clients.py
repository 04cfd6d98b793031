"""How the gateway opens its Redis clients (event logs and tags, readiness, pub/sub).

Every client gets socket timeouts (a Redis that hangs must not hold a request
forever) and the driver metadata computed once: left to itself, redis-py reads
its package metadata from disk for every new connection, on the event loop.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo

# How the gateway's connections show in CLIENT LIST.
CLIENT_NAME = "stirfried-gateway"
# redis.__version__ is read once, when redis is imported.
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)


def client_options(timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``redis.asyncio.Redis.from_url`` (and python-socketio's ``redis_options``).

    A pooled connection whose server restarted fails its next command with a
    ConnectionError; one immediate retry on a new connection makes that invisible.
    """
    return {
        "client_name": CLIENT_NAME,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "driver_info": DRIVER_INFO,
        "retry": Retry(NoBackoff(), retries=1),
        "retry_on_error": [redis.ConnectionError],
    }


def open_client(url: str, timeout: float, cluster: bool = False) -> redis.asyncio.Redis:
    """A client for ``url`` (with ``cluster``, a Redis Cluster client); it connects on first use."""
    if cluster:
        # The commands the gateway sends (pipelines of one task's keys) are the same on both.
        client: Any = redis.asyncio.cluster.RedisCluster.from_url(url, **client_options(timeout))
        return client  # type: ignore[no-any-return]
    return redis.asyncio.Redis.from_url(url, **client_options(timeout))
