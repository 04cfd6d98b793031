"""Prometheus metrics of one gateway process, in a registry of its own.

Collected always (it is cheap); exposed at ``/metrics`` unless
``stirfried_metrics`` is off. HTTP requests are timed by the middleware
:meth:`GatewayMetrics.measure_requests` builds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from stirfried import protocol

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client may schedule any task name; labels must not grow without bound.
MAX_TASK_NAME_LABELS = 200
OTHER_TASK_NAME = "(other)"
OTHER_EVENT = "(other)"


class TaskNameLabels:
    """Task names as metric labels: the allowlist if there is one, else the first names seen."""

    def __init__(self, allowed: tuple[str, ...], limit: int = MAX_TASK_NAME_LABELS) -> None:
        self._seen = set(allowed)
        self._limit = len(self._seen) if allowed else limit

    def __call__(self, task_name: str) -> str:
        if task_name in self._seen:
            return task_name
        if len(self._seen) < self._limit:
            self._seen.add(task_name)
            return task_name
        return OTHER_TASK_NAME


@dataclasses.dataclass(frozen=True)
class GatewayMetrics:
    """The gateway's metrics; one instance per application."""

    registry: CollectorRegistry
    task_name: TaskNameLabels
    tasks_scheduled: Counter
    tasks_rejected: Counter
    events_relayed: Counter
    event_counters: Mapping[str, Any]
    """``events_relayed`` per event name, looked up once: ``labels()`` per event showed in profiles."""
    socketio_clients: Gauge
    executor_pending: Gauge
    celery_call_seconds: Histogram
    publish_batch_size: Histogram
    """Tasks per broker round trip: above 1 when concurrent publishes were coalesced."""
    http_request_seconds: Histogram

    @classmethod
    def create(cls, allowed_tasks: tuple[str, ...]) -> GatewayMetrics:
        registry = CollectorRegistry()
        events_relayed = Counter(
            "stirfried_events_relayed", "Worker events relayed to this gateway's clients.",
            ["event"], registry=registry,
        )  # fmt: skip
        return cls(
            registry=registry,
            task_name=TaskNameLabels(allowed_tasks),
            tasks_scheduled=Counter(
                "stirfried_tasks_scheduled", "Tasks published to the broker.",
                ["task_name", "api"], registry=registry,
            ),
            tasks_rejected=Counter(
                "stirfried_tasks_rejected", "Task requests refused, by reason.",
                ["task_name", "api", "reason"], registry=registry,
            ),
            events_relayed=events_relayed,
            event_counters={
                name: events_relayed.labels(name) for name in (*protocol.ALL_EVENTS, OTHER_EVENT)
            },
            socketio_clients=Gauge(
                "stirfried_socketio_clients", "Connected Socket.IO clients.", registry=registry
            ),
            executor_pending=Gauge(
                "stirfried_executor_pending", "Celery calls queued or running in the thread pool.",
                registry=registry,
            ),
            celery_call_seconds=Histogram(
                "stirfried_celery_call_seconds", "Duration of blocking Celery calls.",
                ["operation"], registry=registry,
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            ),
            publish_batch_size=Histogram(
                "stirfried_publish_batch_size", "Tasks sent to the broker together, per batch.",
                registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            ),
            http_request_seconds=Histogram(
                "stirfried_http_request_seconds", "HTTP request duration.",
                ["route", "method", "status"], registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            ),
        )  # fmt: skip

    def count_event(self, event: str) -> None:
        """Count one relayed event; names outside Stirfried's events count as ``(other)``."""
        counters = self.event_counters
        (counters.get(event) or counters[OTHER_EVENT]).inc()

    def count_clients_with(self, count: Callable[[], int]) -> None:
        """Read the number of connected clients from ``count`` at scrape time."""
        self.socketio_clients.set_function(lambda: float(count()))

    def measure_requests(self) -> Middleware:
        """Middleware observing each request's duration by route (its pattern, not the
        path, so labels stay bounded), method and status."""
        histogram = self.http_request_seconds

        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as error:
                status = error.status
                raise
            finally:
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else "(unmatched)"
                histogram.labels(route, request.method, str(status)).observe(time.perf_counter() - started)

        return measure

    def routes(self) -> list[web.RouteDef]:
        """``GET /metrics`` in the Prometheus text format."""

        async def show_metrics(request: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        return [web.get("/metrics", show_metrics)]
