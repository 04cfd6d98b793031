"""Names and payloads of the events workers emit to Socket.IO clients.

The payloads are those of Stirfried 0.7.0's event table plus two fields every
event carries: ``event_id`` (1, 2, 3, ... per task, in emission order) and
``timestamp`` (seconds since the epoch, from the worker). Keeping them in one
module lets the worker, the gateway, the Python client and the tests agree.
"""

from __future__ import annotations

from typing import Any

ON_PROGRESS = "on_progress"
ON_RETRY = "on_retry"
ON_FAILURE = "on_failure"
ON_SUCCESS = "on_success"
ON_RETURN = "on_return"
# Celery's own lifecycle, emitted only with ``stirfried_celery_events``.
ON_RECEIVED = "on_received"
ON_STARTED = "on_started"
ON_REVOKED = "on_revoked"
ALL_EVENTS = (
    ON_PROGRESS,
    ON_RETRY,
    ON_FAILURE,
    ON_SUCCESS,
    ON_RETURN,
    ON_RECEIVED,
    ON_STARTED,
    ON_REVOKED,
)
TERMINAL_EVENTS = (ON_SUCCESS, ON_FAILURE)
# The last event a task ever emits: ``on_return`` follows on_success/on_failure;
# a task revoked before it ran (or terminated) ends with ``on_revoked``.
FINAL_EVENTS = frozenset({ON_RETURN, ON_REVOKED})

EVENT_ID = "event_id"
TIMESTAMP = "timestamp"

# Rooms (and Redis keys) under this prefix belong to Stirfried: clients may not
# pick them as custom rooms, so nobody can inject events into a task's stream.
RESERVED_PREFIX = "stirfried:"


def task_room(task_id: str) -> str:
    """The Socket.IO room every event of ``task_id`` is sent to (its subscribers)."""
    return f"{RESERVED_PREFIX}task:{task_id}"


def task_id_of_room(room: str) -> str | None:
    """The task id of a :func:`task_room` name, else None."""
    prefix = f"{RESERVED_PREFIX}task:"
    return room[len(prefix) :] if room.startswith(prefix) else None


def event_log_key(task_id: str) -> str:
    """The Redis stream holding a task's events (hash-tagged: one cluster slot per task)."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:events"


def event_sequence_key(task_id: str) -> str:
    """The Redis counter that numbers a task's events."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:seq"


def progress(task_id: str, task_name: str | None, current: Any, total: Any, info: Any) -> dict[str, Any]:
    """Payload of ``on_progress``."""
    return {
        "current": current,
        "total": total,
        "info": info,
        "task_id": task_id,
        "task_name": task_name,
    }


def problem(task_id: str, task_name: str | None, einfo: str | None) -> dict[str, Any]:
    """Payload of ``on_retry`` and ``on_failure``; ``einfo`` only when error info is on."""
    payload: dict[str, Any] = {"task_id": task_id, "task_name": task_name}
    if einfo is not None:
        payload["einfo"] = einfo
    return payload


def success(task_id: str, task_name: str | None, retval: Any) -> dict[str, Any]:
    """Payload of ``on_success``."""
    return {"retval": retval, "task_id": task_id, "task_name": task_name}


def returned(task_id: str, task_name: str | None, status: str, retval: Any) -> dict[str, Any]:
    """Payload of ``on_return``."""
    return {"status": status, "retval": retval, "task_id": task_id, "task_name": task_name}


def lifecycle(task_id: str, task_name: str | None, **details: Any) -> dict[str, Any]:
    """Payload of ``on_received``, ``on_started`` and ``on_revoked``."""
    return {"task_id": task_id, "task_name": task_name, **details}
