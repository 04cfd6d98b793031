"""Names and payloads of the events workers emit to Socket.IO clients.

The payloads are exactly those of Stirfried 0.7.0's event table; keeping them in
one module lets the worker, the Python client and the tests agree on them.
"""

from __future__ import annotations

from typing import Any

ON_PROGRESS = "on_progress"
ON_RETRY = "on_retry"
ON_FAILURE = "on_failure"
ON_SUCCESS = "on_success"
ON_RETURN = "on_return"
ALL_EVENTS = (ON_PROGRESS, ON_RETRY, ON_FAILURE, ON_SUCCESS, ON_RETURN)
TERMINAL_EVENTS = (ON_SUCCESS, ON_FAILURE)


def progress(task_id: str, task_name: str, current: Any, total: Any, info: Any) -> dict[str, Any]:
    """Payload of ``on_progress``."""
    return {
        "current": current,
        "total": total,
        "info": info,
        "task_id": task_id,
        "task_name": task_name,
    }


def problem(task_id: str, task_name: str, einfo: str | None) -> dict[str, Any]:
    """Payload of ``on_retry`` and ``on_failure``; ``einfo`` only when error info is on."""
    payload: dict[str, Any] = {"task_id": task_id, "task_name": task_name}
    if einfo is not None:
        payload["einfo"] = einfo
    return payload


def success(task_id: str, task_name: str, retval: Any) -> dict[str, Any]:
    """Payload of ``on_success``."""
    return {"retval": retval, "task_id": task_id, "task_name": task_name}


def returned(task_id: str, task_name: str, status: str, retval: Any) -> dict[str, Any]:
    """Payload of ``on_return``."""
    return {"status": status, "retval": retval, "task_id": task_id, "task_name": task_name}
