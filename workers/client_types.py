"""What the Python client sends and gets back, typed (``stirfried.client`` re-exports these).

The gateway's replies are parsed here, once, into frozen dataclasses; a reply of
an unexpected shape raises :class:`StirfriedError` naming the request.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import secrets
from typing import Any, TypedDict

from stirfried.client_errors import StirfriedError

SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{22,128}")


@dataclasses.dataclass(frozen=True)
class Progress:
    """One ``on_progress`` event."""

    task_id: str
    current: Any
    total: Any
    info: Any


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """A task's state from the result backend."""

    id: str
    state: str
    result: Any


@dataclasses.dataclass(frozen=True)
class TaskType:
    """A task the caller may schedule and live workers serve (one entry of ``list_tasks``)."""

    name: str
    doc: str | None
    """The first paragraph of the task's docstring."""
    signature: str
    """The arguments as Python shows them, e.g. ``(x: int, y: int = 2)``."""
    parameters: dict[str, Any]
    """A JSON Schema (``"type": "object"``) of the keyword arguments, from the type annotations."""
    queues: tuple[str, ...]
    workers: int
    """How many live workers serve it."""


@dataclasses.dataclass(frozen=True)
class MyTask:
    """One of the caller's recent tasks. Times are Unix seconds, ``None`` until they happen."""

    id: str
    name: str
    state: str
    """Celery's: PENDING, STARTED, SUCCESS, FAILURE, RETRY, REVOKED."""
    scheduled: float | None
    started: float | None
    finished: float | None
    token: str | None
    """Its subscription token: :meth:`StirfriedClient.follow` it with this."""


@dataclasses.dataclass(frozen=True)
class TaskPage:
    """A page of :meth:`StirfriedClient.my_tasks`, newest first; ``next`` asks for the one after."""

    tasks: tuple[MyTask, ...]
    next: str | None


class ScheduleOptions(TypedDict, total=False):
    """The keyword options of :meth:`StirfriedClient.schedule` (and ``run``).

    Celery's options reach the gateway only where its config (and token) allows them.
    """

    chain: list[dict[str, Any]]
    """Task objects (without ``chain``) to run after this one; each may carry the options below."""
    room: str
    countdown: float
    """Seconds to wait before running it."""
    eta: datetime.datetime | str
    """When to run it: a timezone-aware datetime or an ISO 8601 string."""
    expires: float | datetime.datetime | str
    """Seconds from now, or a time, after which a worker drops it unstarted (``on_revoked``)."""
    priority: int
    """0 to 9, as the broker understands it."""
    queue: str
    idempotency_key: str
    """Retry a submit safely: a repeat with the same key returns the first task, publishing nothing."""


def task_object(
    task_name: str, args: list[Any], kwargs: dict[str, Any], options: ScheduleOptions
) -> dict[str, Any]:
    """The ``send_task`` task object: Celery's options as the gateway reads them (times in ISO 8601)."""
    task: dict[str, Any] = {"task_name": task_name, "args": args, "kwargs": kwargs}
    for name, value in options.items():
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name} must be a timezone-aware datetime (e.g. datetime.now(UTC))")
            value = value.isoformat()
        task[name] = value
    return task


def new_session_key() -> str:
    """A random session key (32 bytes, base64url): pass it as ``session=`` to find this
    session's tasks again from a later connection on an anonymous gateway."""
    return secrets.token_urlsafe(32)


def check_session_key(session: str) -> str:
    if not SESSION_KEY.fullmatch(session):
        raise ValueError("a session key is 22 to 128 characters of A-Z, a-z, 0-9, _ and -")
    return session


def parse_task_types(reply: dict[str, Any]) -> list[TaskType]:
    """``list_tasks``' reply: ``{"status": "success", "data": [entry, ...]}``."""
    try:
        return [
            TaskType(
                name=str(entry["name"]),
                doc=_optional_str(entry.get("doc")),
                signature=str(entry.get("signature") or "()"),
                parameters=dict(entry.get("parameters") or {}),
                queues=tuple(str(queue) for queue in entry.get("queues") or ()),
                workers=int(entry.get("workers") or 0),
            )
            for entry in reply["data"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise StirfriedError(f"unexpected reply to list_tasks: {reply!r}") from error


def parse_task_page(reply: dict[str, Any]) -> TaskPage:
    """``list_my_tasks``' reply: ``{"status": "success", "data": [entry, ...], "next": cursor}``."""
    try:
        tasks = tuple(
            MyTask(
                id=str(entry["id"]),
                name=str(entry["name"]),
                state=str(entry["state"]),
                scheduled=_optional_time(entry.get("scheduled")),
                started=_optional_time(entry.get("started")),
                finished=_optional_time(entry.get("finished")),
                token=_optional_str(entry.get("token")),
            )
            for entry in reply["data"]
        )
    except (KeyError, TypeError, ValueError) as error:
        raise StirfriedError(f"unexpected reply to list_my_tasks: {reply!r}") from error
    return TaskPage(tasks, _optional_str(reply.get("next")))


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _optional_time(value: Any) -> float | None:
    return None if value is None else float(value)
