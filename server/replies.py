"""The shapes of what the gateway answers, shared by the HTTP and Socket.IO APIs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stirfried import protocol

if TYPE_CHECKING:  # only the type: the facade sits below the replies' callers
    from stirfried.server.celery_facade import TaskState


def dumps(value: Any) -> str:
    """JSON for HTTP responses and SSE; never fails on a task's odd return value (bytes
    become base64: JSON has none; Socket.IO clients get real binary)."""
    return json.dumps(value, default=protocol.json_fallback)


def http_body(value: Any) -> str:
    """An HTTP response's JSON body: one line, ended, so replies read one per line in a
    terminal (``curl``)."""
    return dumps(value) + "\n"


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
        result = protocol.describe_error(result) if error_info else None
    return {"id": state.task_id, "state": state.state, "result": result}
