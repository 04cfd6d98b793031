"""``/healthz`` (the process answers) and ``/readyz`` (Redis and the broker answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import redis.asyncio
from aiohttp import web

from stirfried.server import redis_clients, replies
from stirfried.server.app_keys import CELERY, CONFIG, READINESS_REDIS
from stirfried.server.errors import CeleryUnavailable


async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves requests."""
    return web.json_response(replies.succeeded("alive"), dumps=replies.http_body)


async def readyz(request: web.Request) -> web.Response:
    """200 when Redis and the broker answer within the broker timeout; 503 naming what failed."""
    redis_check, broker_check = await asyncio.gather(_check_redis(request.app), _check_broker(request.app))
    checks = {"redis": redis_check, "broker": broker_check}
    ready = all(result in ("ok", "not configured") for result in checks.values())
    if ready:
        return web.json_response(replies.succeeded(checks), dumps=replies.http_body)
    return web.json_response(replies.failed(checks), status=503, dumps=replies.http_body)


async def _check_redis(app: web.Application) -> str:
    client = app.get(READINESS_REDIS)
    if client is None:
        return "not configured"
    timeout = app[CONFIG].stirfried.broker_timeout
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except (redis.RedisError, OSError) as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"


async def _check_broker(app: web.Application) -> str:
    try:
        await app[CELERY].check_broker()
    except CeleryUnavailable as error:
        return f"unavailable: {error.message}"
    return "ok"


async def readiness_redis(app: web.Application) -> AsyncIterator[None]:
    """A small Redis client of its own for readiness probes (closed at shutdown)."""
    settings = app[CONFIG].stirfried
    if settings.redis_url:
        app[READINESS_REDIS] = redis_clients.open_client(settings.redis_url, settings.broker_timeout)
    yield
    if READINESS_REDIS in app:
        await app[READINESS_REDIS].aclose()


def health_routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
