"""The HTTP API: schedule, inspect, revoke and follow tasks with plain HTTP requests.

Routes (without those the feature flags switch off):

- ``POST /task``: schedule the task object in the JSON body; 201 with the id and its token
  (``Idempotency-Key``: a repeat returns the first task, with ``Idempotent-Replayed: true``);
- ``GET /task/{task_id}``: ``{id, state, result}`` from the result backend (404: never issued);
- ``DELETE /task/{task_id}``: revoke (``?terminate=true[&signal=...]``: stop it running);
  succeeds for unknown ids too;
- ``GET /task/{task_id}/events``: the task's events as Server-Sent Events;
- ``GET /tasks``: the tasks the caller may schedule that live workers serve (the catalog);
- ``GET /tasks/mine``: the caller's recent tasks, newest first (``?limit=&cursor=``).

Every refusal is answered by :func:`json_errors` through :mod:`errors`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from stirfried import protocol
from stirfried.protocol import TaskEvent
from stirfried.server import replies
from stirfried.server.app_keys import (
    ACCESS,
    BUDGET,
    CALLERS,
    CONFIG,
    CONNECTIONS,
    OPERATIONS,
    SCHEDULER,
    SUBSCRIPTIONS,
)
from stirfried.server.caller import ANONYMOUS, Caller
from stirfried.server.errors import (
    InvalidRequest,
    RateLimited,
    Refusal,
    Refused,
    TooLarge,
    UnsupportedMediaType,
    http_reply,
)
from stirfried.server.http_connections import connection_closed
from stirfried.server.limits import READ_COST, RateLimiter, replay_charge
from stirfried.server.logs import one_line
from stirfried.server.task_request import (
    ClientJson,
    RevokeRequest,
    parse_flag,
    parse_last_event_id,
    parse_page,
    parse_signal,
    parse_task_id,
)
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A comment line this often keeps proxies from closing a quiet event stream.
KEEPALIVE_SECONDS = 15.0


def http_routes(settings: StirfriedSettings) -> list[web.RouteDef]:
    """The HTTP API's routes, without those the feature flags switch off."""
    routes = [
        web.post("/task", schedule_task),
        web.get("/task/{task_id}/events", task_events, allow_head=False),
        web.get("/tasks", list_tasks, allow_head=False),
        web.get("/tasks/mine", list_my_tasks, allow_head=False),
    ]
    if settings.enable_task_info:
        routes.append(web.get("/task/{task_id}", task_info, allow_head=False))
    if settings.enable_revoke_task:
        routes.append(web.delete("/task/{task_id}", revoke_task))
    return routes


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=replies.http_body)


async def schedule_task(request: web.Request) -> web.Response:
    """``POST /task``: publish the task object in the body; 201 with the task id."""
    caller = request.app[CALLERS].of_request(request)
    scheduled = await request.app[SCHEDULER].schedule(
        await _json_body(request),
        caller,
        default_room=request.app[CONFIG].stirfried.sentinel_room,
        api="http",
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    task_id = scheduled.task_id
    response = json_response(replies.scheduled(task_id, request.app[ACCESS].issue_token(task_id)), status=201)
    if scheduled.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def task_info(request: web.Request) -> web.Response:
    """``GET /task/{task_id}``: ``{id, state, result}`` from the result backend."""
    task_id = parse_task_id(request.match_info["task_id"])
    caller = request.app[CALLERS].of_request(request)
    return json_response(await request.app[OPERATIONS].info(caller, task_id, request.query.get("token")))


async def revoke_task(request: web.Request) -> web.Response:
    """``DELETE /task/{task_id}[?terminate=true&signal=SIGKILL]``: revoke; succeeds for unknown ids too."""
    terminate = parse_flag(request.query.get("terminate"), "'terminate'")
    revoke = RevokeRequest(
        parse_task_id(request.match_info["task_id"]),
        request.query.get("token"),
        terminate,
        parse_signal(request.query.get("signal"), terminate),
    )
    await request.app[OPERATIONS].revoke(request.app[CALLERS].of_request(request), revoke)
    return json_response(replies.succeeded(revoke.task_id))


async def list_tasks(request: web.Request) -> web.Response:
    """``GET /tasks``: the catalog, as far as the caller may schedule."""
    caller = request.app[CALLERS].of_request(request)
    return json_response(replies.succeeded(await request.app[OPERATIONS].available(caller)))


async def list_my_tasks(request: web.Request) -> web.Response:
    """``GET /tasks/mine?limit=20&cursor=...``: the caller's recent tasks (token holders)."""
    page = parse_page(dict(request.query))
    return json_response(await request.app[OPERATIONS].mine(request.app[CALLERS].of_request(request), page))


async def task_events(request: web.Request) -> web.StreamResponse:
    """``GET /task/{task_id}/events``: Server-Sent Events, for ``curl -N`` or ``EventSource``.

    Replays the logged events after ``Last-Event-ID`` (or ``?after=``), then
    streams live ones, and ends after the task's final event. Each message
    carries ``<epoch>:<event_id>`` as its SSE ``id``, so a browser's ``EventSource``
    resumes exactly where it left (and replays everything if the log it numbered
    is gone). The subscription token suffices (EventSource
    cannot send headers); a client token in Authorization works for the tasks
    its ``follow`` claims name.
    """
    task_id = parse_task_id(request.match_info["task_id"])
    caller = _optional_caller(request)
    request.app[BUDGET].take(caller.rate_key, READ_COST)
    await request.app[ACCESS].check_follow(caller.principal, task_id, request.query.get("token"))
    after, epoch = parse_last_event_id(request.headers.get("Last-Event-ID", request.query.get("after")))
    connections = request.app[CONNECTIONS]
    if not connections.open(caller.address):
        raise RateLimited("too many connections from this address")
    response = _event_stream()
    streaming = asyncio.ensure_future(
        _stream_events(request, response, task_id, after, epoch, caller, request.app[BUDGET])
    )
    # A client that leaves ends its stream at once (its follow and its slot with it).
    closed = connection_closed(request)

    def stop(_closed: asyncio.Future[None]) -> None:
        streaming.cancel()

    if closed is not None:
        closed.add_done_callback(stop)
    try:
        return await streaming
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if closed is None or not closed.done() or (current is not None and current.cancelling()):
            raise
        logger.debug("SSE client of task %s went away", task_id)
        return response
    finally:
        if closed is not None:
            closed.remove_done_callback(stop)
        connections.close(caller.address)


async def _stream_events(
    request: web.Request,
    response: web.StreamResponse,
    task_id: str,
    after: int,
    epoch: str | None,
    caller: Caller,
    budget: RateLimiter,
) -> web.StreamResponse:
    """Write the task's events to ``response`` as they come; the stream ends with the task,
    at shutdown, or when the caller's token expires (it must not receive events after that)."""
    events = request.app[SUBSCRIPTIONS].stream(
        task_id, after, idle=KEEPALIVE_SECONDS, epoch=epoch, charge=replay_charge(budget, caller.rate_key)
    )
    # Started once the task is followed: until then a failure (Redis down) is still a JSON 503.
    try:
        async with asyncio.timeout_at(_loop_time(caller.principal.expires)):
            async for event in events:
                await response.prepare(request)
                await response.write(b": keepalive\n\n" if event is None else format_event(event))
    except TimeoutError:
        pass  # the token expired: end the stream
    except ConnectionResetError:
        # The client left mid-stream (EventSource closed, curl stopped): its choice, not an error.
        logger.debug("SSE client of task %s went away", task_id)
        return response
    finally:
        await events.aclose()
    await response.prepare(request)
    await response.write_eof()
    return response


def _loop_time(unix_time: float | None) -> float | None:
    """``unix_time`` on the event loop's clock (for asyncio.timeout_at); None stays None."""
    if unix_time is None:
        return None
    return asyncio.get_running_loop().time() + (unix_time - time.time())


def format_event(event: TaskEvent) -> bytes:
    """One SSE message: ``id``, ``event`` and the payload as one line of JSON."""
    epoch = event.payload.get(protocol.EPOCH)
    sse_id = f"{epoch}:{event.event_id}" if protocol.is_epoch(epoch) else str(event.event_id)
    return f"id: {sse_id}\nevent: {event.name}\ndata: {replies.dumps(event.payload)}\n\n".encode()


def _event_stream() -> web.StreamResponse:
    """An SSE response, not yet started (``prepare`` sends its head; again, it does nothing)."""
    return web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # nginx would otherwise buffer the stream
            "X-Accel-Buffering": "no",
        }
    )


def _optional_caller(request: web.Request) -> Caller:
    """The caller when an Authorization header is present; anonymous otherwise."""
    callers = request.app[CALLERS]
    if "Authorization" in request.headers:
        return callers.of_request(request)
    address = callers.address_of(request)
    return Caller(ANONYMOUS, address, address)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as ``{"status": "failed", "data": message}`` with a fitting status.

    Tracebacks go to the log, never to the client.
    """
    try:
        return await handler(request)
    except Refusal as refusal:
        return http_reply(refusal)
    except web.RequestPayloadError as error:  # a body the HTTP parser refused midway
        return http_reply(InvalidRequest(f"the request body is malformed: {one_line(str(error))}"))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        if error.status == 413:
            limit = request.app[CONFIG].stirfried.max_request_bytes
            response = http_reply(TooLarge(f"the request body is larger than {limit} bytes"))
        else:
            response = http_reply(Refused(error.status, error.reason))
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return json_response(replies.failed("internal server error"), status=500)


async def _json_body(request: web.Request) -> Any:
    # Only JSON: a browser sends text/plain and form bodies cross-site without asking
    # (no CORS preflight), so accepting them would let any page schedule tasks.
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"the request body must be JSON (Content-Type: application/json), not {content_type}"
        )
    body = await request.read()
    try:
        return ClientJson.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequest(f"the request body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise InvalidRequest("the request body nests too deeply to parse") from error
