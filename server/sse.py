"""``GET /task/{task_id}/events``: a task's events as Server-Sent Events, for ``curl -N``.

Replays the logged events after ``Last-Event-ID`` (or the ``after`` query
parameter), then streams live ones, and ends after the task's final event.
Each message carries the ``event_id`` as its SSE ``id``, so a browser's
``EventSource`` and ``curl -H "Last-Event-ID: N"`` resume exactly where they left.
"""

from __future__ import annotations

from aiohttp import web

from stirfried.server import replies
from stirfried.server.app_keys import ACCESS, AUTH, SUBSCRIPTIONS
from stirfried.server.auth import ANONYMOUS, bearer_token
from stirfried.server.event_log import TaskEvent
from stirfried.server.task_request import parse_after, parse_task_id

# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0


def format_event(event: TaskEvent) -> bytes:
    """One SSE message: ``id``, ``event`` and the payload as one line of JSON."""
    return f"id: {event.event_id}\nevent: {event.name}\ndata: {replies.dumps(event.payload)}\n\n".encode()


async def task_events(request: web.Request) -> web.StreamResponse:
    task_id = parse_task_id(request.match_info["task_id"])
    # The subscription token suffices (EventSource cannot send headers); a client
    # token in Authorization works for the tasks its ``follow`` claim names.
    authorization = request.headers.get("Authorization")
    principal = request.app[AUTH].authenticate(bearer_token(authorization)) if authorization else ANONYMOUS
    await request.app[ACCESS].check_follow(principal, task_id, request.query.get("token"))
    after = parse_after(request.headers.get("Last-Event-ID", request.query.get("after")))
    events = request.app[SUBSCRIPTIONS].stream(task_id, after, idle=KEEPALIVE_SECONDS)
    response: web.StreamResponse | None = None
    try:
        async for event in events:
            if response is None:
                response = await _start(request)
            await response.write(b": keepalive\n\n" if event is None else format_event(event))
        if response is None:
            response = await _start(request)
        await response.write_eof()
    finally:
        await events.aclose()
    return response


async def _start(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # nginx would otherwise buffer the stream
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response
