"""The gateway's one error vocabulary: every refusal, its HTTP status, and how it is answered.

Each refusal is a :class:`Refusal` subclass carrying the status and a message
that names the problem. :func:`http_reply` and :func:`socketio_reply` are the
only places that turn one into what the client sees, so the two APIs cannot
answer the same mistake differently.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from stirfried.server import replies


class Refusal(Exception):
    """A request the gateway refuses; ``status`` is the HTTP status, ``message`` names the problem."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(Refusal):
    """Malformed input: a body that is not JSON, a bad field, a task id that is not one."""

    status = 400


class NotAuthenticated(Refusal):
    """No token, or one that is invalid or expired."""

    status = 401


class NotPermitted(Refusal):
    """The caller may not follow, read or revoke this task (no or a wrong token)."""

    status = 403


class TaskNotAllowed(Refusal):
    """A task name outside ``stirfried_available_tasks`` or the token's ``tasks`` claim."""

    status = 403


class NotFound(Refusal):
    """No such thing (a route switched off, a task nobody serves)."""

    status = 404


class TaskNotServed(NotFound):
    """A task name no live worker announces (``stirfried_refuse_unserved_tasks``)."""


class UnknownTask(NotFound):
    """A task id this fleet never issued (or whose record has expired)."""


class IdempotencyConflict(Refusal):
    """An idempotency key used again for a different task object."""

    status = 409


class SubscriptionConflict(Refusal):
    """A subscription that clashes with one still being set up for the same client."""

    status = 409


class RequestTimeout(Refusal):
    """A request whose headers did not arrive in time."""

    status = 408


class TooLarge(Refusal):
    """A body or message over ``stirfried_max_request_bytes``."""

    status = 413


class UnsupportedMediaType(Refusal):
    """A body that does not say it is JSON."""

    status = 415


class RateLimited(Refusal):
    """Too many requests from one client."""

    status = 429


class ResultBackendMissing(Refusal):
    """Task state was asked for, but no Celery result backend is configured."""

    status = 501


class ServiceMissing(Refusal):
    """A feature that needs a service the gateway is not configured with (``stirfried_redis_url``)."""

    status = 501


class CeleryUnavailable(Refusal):
    """The broker or result backend failed or did not answer in time."""

    status = 503


class Refused(Refusal):
    """A refusal whose status is chosen at run time: aiohttp's own (no such route,
    method not allowed), answered in our format."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def http_reply(refusal: Refusal) -> web.Response:
    """The HTTP answer to a refusal: ``{"status": "failed", "data": message}`` with its status."""
    response = web.json_response(
        replies.failed(refusal.message), status=refusal.status, dumps=replies.http_body
    )
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="stirfried"'
    return response


def socketio_reply(refusal: Refusal) -> dict[str, Any]:
    """The Socket.IO acknowledgement of a refusal: ``{"status": "failed", "data": message}``."""
    return replies.failed(refusal.message)
