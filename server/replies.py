"""The shapes of what the gateway answers, shared by the HTTP and Socket.IO APIs."""

from __future__ import annotations

import base64
import json
from typing import Any

from stirfried.server.celery_facade import TaskState


def succeeded(data: Any) -> dict[str, Any]:
    """``{"status": "success", "data": ...}``."""
    return {"status": "success", "data": data}


def scheduled(task_id: str, token: str) -> dict[str, Any]:
    """``{"status": "success", "data": task_id, "token": ...}``: the subscription token is
    an addition to Stirfried 0.7.0's reply."""
    return {"status": "success", "data": task_id, "token": token}


def failed(data: Any) -> dict[str, Any]:
    """``{"status": "failed", "data": ...}``: the message naming the problem (or, for
    ``/readyz``, the result of each check)."""
    return {"status": "failed", "data": data}


def task_info(state: TaskState, error_info: bool) -> dict[str, Any]:
    """``{id, state, result}``; an error is shown only with ``stirfried_error_info``."""
    result = state.result
    if state.failed:
        result = describe_error(result) if error_info else None
    return {"id": state.task_id, "state": state.state, "result": result}


def describe_error(error: Any) -> str | None:
    """``"ValueError: boom"`` for an exception; ``None`` for no error."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _json_fallback(value: Any) -> Any:
    # JSON has no bytes: HTTP clients get them base64-encoded (Socket.IO
    # clients get real binary). Anything else unencodable is shown as text.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def dumps(value: Any) -> str:
    """JSON for HTTP responses; never fails on a task's odd return value."""
    return json.dumps(value, default=_json_fallback)
