"""The HTTP API: schedule, inspect and revoke tasks with plain JSON requests."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from stirfried.server import replies
from stirfried.server.app_keys import ACCESS, AUTH, CELERY, CONFIG, SCHEDULER, TOKENS
from stirfried.server.auth import Principal, bearer_token
from stirfried.server.celery_facade import CeleryUnavailable, ResultBackendMissing
from stirfried.server.limits import request_address
from stirfried.server.scheduling import mapped_headers
from stirfried.server.sse import task_events
from stirfried.server.task_request import InvalidRequest, RequestRejected, parse_task_id
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=replies.dumps)


async def schedule_task(request: web.Request) -> web.Response:
    """``POST /task``: publish the task object in the body; 201 with the task id."""
    settings = request.app[CONFIG].stirfried
    principal = principal_of(request)
    address = request_address(request, settings.trusted_proxies)
    task_id = await request.app[SCHEDULER].schedule(
        await _json_body(request),
        default_room=settings.sentinel_room,
        headers=mapped_headers(request.headers, settings),
        api="http",
        client=address,
        principal=principal,
        rate_key=f"address:{address}",
    )
    return json_response(replies.scheduled(task_id, request.app[TOKENS].issue(task_id)), status=201)


async def task_info(request: web.Request) -> web.Response:
    """``GET /task/{task_id}``: ``{id, state, result}`` from the result backend."""
    task_id = parse_task_id(request.match_info["task_id"])
    await _check_access(request, task_id)
    state = await request.app[CELERY].task_state(task_id)
    return json_response(replies.task_info(state, request.app[CONFIG].stirfried.error_info))


async def revoke_task(request: web.Request) -> web.Response:
    """``DELETE /task/{task_id}``: revoke; succeeds for unknown ids too."""
    task_id = parse_task_id(request.match_info["task_id"])
    await _check_access(request, task_id)
    await request.app[CELERY].revoke(task_id)
    return json_response(replies.succeeded(task_id))


def principal_of(request: web.Request) -> Principal:
    """Who sent the request, from ``Authorization: Bearer``; raises NotAuthenticated (401)."""
    return request.app[AUTH].authenticate(bearer_token(request.headers.get("Authorization")))


async def _check_access(request: web.Request, task_id: str) -> None:
    await request.app[ACCESS].check_task_access(principal_of(request), task_id, request.query.get("token"))


def http_routes(settings: StirfriedSettings) -> list[web.RouteDef]:
    """The HTTP API's routes, without those the feature flags switch off."""
    routes = [
        web.post("/task", schedule_task),
        web.get("/task/{task_id}/events", task_events, allow_head=False),
    ]
    if settings.enable_task_info:
        routes.append(web.get("/task/{task_id}", task_info, allow_head=False))
    if settings.enable_revoke_task:
        routes.append(web.delete("/task/{task_id}", revoke_task))
    return routes


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as ``{"status": "failed", "data": message}`` with a fitting status.

    Tracebacks go to the log, never to the client.
    """
    try:
        return await handler(request)
    except RequestRejected as error:
        response = json_response(replies.failed(error.message), status=error.status)
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="stirfried"'
        return response
    except CeleryUnavailable as error:
        return json_response(replies.failed(error.message), status=503)
    except ResultBackendMissing as error:
        return json_response(replies.failed(str(error)), status=501)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = error.reason
        if error.status == 413:
            message = (
                f"the request body is larger than {request.app[CONFIG].stirfried.max_request_bytes} bytes"
            )
        response = json_response(replies.failed(message), status=error.status)
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return json_response(replies.failed("internal server error"), status=500)


async def _json_body(request: web.Request) -> Any:
    body = await request.read()
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequest(f"the request body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise InvalidRequest("the request body nests too deeply to parse") from error
