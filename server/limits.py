"""Per-client limits: a token bucket for scheduling, a cap on connections per IP address,
and the shape of what clients send (nesting depth, encoded size).

Kept in the gateway process (no Redis round trip on the hot path), so with N
gateways a client can reach N times the rate; the load balancer's sticky
sessions keep one client on one gateway.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from stirfried.server.task_request import RequestRejected

# Clients whose buckets are remembered; the least recently seen are forgotten.
MAX_TRACKED_CLIENTS = 100_000


class RateLimited(RequestRejected):
    """Too many tasks from one client: HTTP 429."""

    status = 429


class TooLarge(RequestRejected):
    """A body or message over ``stirfried_max_request_bytes``: HTTP 413."""

    status = 413


class RateLimiter:
    """Token buckets: ``rate`` tasks per second per client, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, client: str, now: float | None = None) -> None:
        """Spend one token of ``client``'s bucket; raise RateLimited when it is empty."""
        if self._rate <= 0:
            return
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            raise RateLimited(f"too many tasks: at most {self._rate:g} per second (burst {self._burst:g})")
        self._buckets[client] = (tokens - 1, now)
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)


class ConnectionCounter:
    """Open Socket.IO connections per IP address, capped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: collections.Counter[str] = collections.Counter()

    def open(self, address: str) -> bool:
        """Count a new connection from ``address``; False (and not counted) over the limit."""
        if self._limit and self._open[address] >= self._limit:
            return False
        self._open[address] += 1
        return True

    def close(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


def client_address(remote: str | None, forwarded_for: str | None, trusted: frozenset[str]) -> str:
    """The client's address: the peer's, or behind trusted proxies the last untrusted hop
    of ``X-Forwarded-For`` (earlier hops are the client's to make up)."""
    address = remote or "unknown"
    if address in trusted and forwarded_for:
        for hop in reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()]):
            address = hop
            if hop not in trusted:
                break
    return address


def request_address(request: web.Request, trusted_proxies: Iterable[str]) -> str:
    """The client address of an aiohttp request (see client_address)."""
    return client_address(request.remote, request.headers.get("X-Forwarded-For"), frozenset(trusted_proxies))


def check_shape(value: Any, max_nesting: int, what: str) -> None:
    """Raise RequestRejected when ``value`` nests lists/objects deeper than ``max_nesting``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= max_nesting:
                raise RequestRejected(f"'{what}' nests deeper than {max_nesting} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def check_size(value: Any, max_bytes: int, what: str) -> None:
    """Raise TooLarge when ``value`` would take more than ``max_bytes`` as JSON."""
    size = len(json.dumps(value, default=lambda item: "x" * len(item) if isinstance(item, bytes) else None))
    if size > max_bytes:
        raise TooLarge(f"the {what} is larger than {max_bytes} bytes")
