"""HTTP request metrics and the ``/metrics`` endpoint."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stirfried.server.app_keys import METRICS
from stirfried.server.http_api import Handler


@web.middleware
async def measure_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe each request's duration by route (its pattern, not the path), method and status."""
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
        request.app[METRICS].http_request_seconds.labels(route, request.method, str(status)).observe(
            time.perf_counter() - started
        )


async def show_metrics(request: web.Request) -> web.Response:
    """The Prometheus text format."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
