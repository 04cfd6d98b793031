"""Per-client limits: a token bucket for scheduling, a cap on connections per address.

Kept in the gateway process (no Redis round trip on the hot path), so with N
gateways a client can reach N times the rate; the load balancer's sticky
sessions keep one client on one gateway.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from stirfried.server.errors import RateLimited

# Clients whose buckets are remembered; the least recently seen are forgotten.
MAX_TRACKED_CLIENTS = 100_000


# What each client operation costs from its budget, in scheduled-task units: a revoke
# is a broadcast every worker processes; reads and subscriptions are cheaper.
TASK_COST = 1.0
REVOKE_COST = 1.0
READ_COST = 0.2
# Each event a replay sends (subscribe_task, an SSE stream resuming): its cost to the
# gateway is its own (about 60 us each), so a replay of the whole log (1,000 events by
# default) costs what 20 tasks do, and a resume of a few events almost nothing.
REPLAYED_EVENT_COST = 0.02


class RateLimiter:
    """Token buckets: ``rate`` units per second per client, ``burst`` at once.

    One budget covers every client operation (see the costs above), so neither a
    flood of revokes or reads nor one request with a long chain escapes it.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, client: str, cost: float = TASK_COST, now: float | None = None) -> None:
        """Spend ``cost`` of ``client``'s bucket; raise RateLimited when it has less."""
        if self._rate <= 0:
            return
        if cost > self._burst:
            raise RateLimited(f"this request costs {cost:g} tasks, more than the burst of {self._burst:g}")
        now = time.monotonic() if now is None else now
        tokens = self._refilled(client, now)
        if tokens < cost:
            self._keep(client, tokens, now)
            raise RateLimited(
                f"too many requests: at most {self._rate:g} tasks per second (burst {self._burst:g})"
            )
        self._keep(client, tokens - cost, now)

    def charge(self, client: str, cost: float, now: float | None = None) -> None:
        """Charge ``cost`` for work whose size is known only once it is under way (a replay,
        after its log was read), even beyond what the bucket holds: the client's next
        requests wait until it refills. Raise RateLimited, still charging, if the bucket was
        already in debt: of the client's replays read side by side, only the first is sent."""
        if self._rate <= 0 or cost <= 0:
            return
        now = time.monotonic() if now is None else now
        tokens = self._refilled(client, now)
        self._keep(client, tokens - cost, now)
        if tokens < 0:
            raise RateLimited(
                f"too many requests: at most {self._rate:g} tasks per second (burst {self._burst:g}); "
                f"a replay costs {REPLAYED_EVENT_COST:g} per event"
            )

    def _refilled(self, client: str, now: float) -> float:
        tokens, last = self._buckets.pop(client, (self._burst, now))
        return min(self._burst, tokens + (now - last) * self._rate)

    def _keep(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)


def replay_charge(budget: RateLimiter, client: str) -> Callable[[int], None]:
    """What charges ``client`` for a replay of some number of events."""
    return lambda events: budget.charge(client, REPLAYED_EVENT_COST * events)


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
