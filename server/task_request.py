"""Parse the task object clients send into a typed value, or a clear error.

This is the one place where client input is validated; everything after it
trusts a :class:`TaskRequest`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

MAX_TASK_NAME_LENGTH = 255
MAX_ROOM_LENGTH = 255
MAX_TASK_ID_LENGTH = 255
TASK_FIELDS = ("task_name", "args", "kwargs", "room", "chain")


class RequestRejected(Exception):
    """Client input we refuse, with the HTTP status that says why."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(RequestRejected):
    """Malformed input: HTTP 400."""

    status = 400


class TaskNotAllowed(RequestRejected):
    """A task name outside ``stirfried_available_tasks``: HTTP 403."""

    status = 403


@dataclasses.dataclass(frozen=True)
class TaskCall:
    """One task to run: its name and the arguments the client gave."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TaskRequest:
    """A validated task object: the main task, an optional room, the chain as sent."""

    call: TaskCall
    room: str | None = None
    chain: tuple[TaskCall, ...] = ()

    def calls(self) -> tuple[TaskCall, ...]:
        """The main task followed by every chained task."""
        return (self.call, *self.chain)


def parse_task_request(data: Any) -> TaskRequest:
    """Validate a task object (already decoded from JSON or Socket.IO)."""
    fields = _task_object(data, "task object", TASK_FIELDS)
    chain_data = fields.get("chain", [])
    if not isinstance(chain_data, list):
        raise InvalidRequest("'chain' must be an array of task objects")
    chain = tuple(
        _task_call(_task_object(item, f"chain[{index}]", TASK_FIELDS[:3]), f"chain[{index}].")
        for index, item in enumerate(chain_data)
    )
    room = fields.get("room")
    if room is not None and (not isinstance(room, str) or not 0 < len(room) <= MAX_ROOM_LENGTH):
        raise InvalidRequest(f"'room' must be a non-empty string of at most {MAX_ROOM_LENGTH} characters")
    return TaskRequest(call=_task_call(fields, ""), room=room, chain=chain)


def parse_task_id(value: Any) -> str:
    """Validate a task id given by a client."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("a task id must be a non-empty string")
    if len(value) > MAX_TASK_ID_LENGTH or not value.isprintable():
        raise InvalidRequest(f"a task id must be printable and at most {MAX_TASK_ID_LENGTH} characters")
    return value


def check_allowed(request: TaskRequest, available_tasks: tuple[str, ...]) -> None:
    """Raise TaskNotAllowed when any task of the request is outside the allowlist."""
    if not available_tasks:
        return
    for call in request.calls():
        if call.name not in available_tasks:
            raise TaskNotAllowed(f"task '{call.name}' is not available")


def _task_object(data: Any, what: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidRequest(f"the {what} must be an object with at least 'task_name'")
    for key in data:
        if key not in allowed:
            if key == "chain":
                raise InvalidRequest(f"{what}: chained tasks cannot have a 'chain' of their own")
            raise InvalidRequest(f"{what}: unknown field {key!r} (allowed: {', '.join(allowed)})")
    return data


def _task_call(fields: Mapping[str, Any], prefix: str) -> TaskCall:
    name = fields.get("task_name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"'{prefix}task_name' is required and must be a non-empty string")
    if len(name) > MAX_TASK_NAME_LENGTH:
        raise InvalidRequest(f"'{prefix}task_name' is longer than {MAX_TASK_NAME_LENGTH} characters")
    args = fields.get("args", [])
    if not isinstance(args, (list, tuple)):
        raise InvalidRequest(f"'{prefix}args' must be an array")
    kwargs = fields.get("kwargs", {})
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidRequest(f"'{prefix}kwargs' must be an object")
    return TaskCall(name=name, args=tuple(args), kwargs=dict(kwargs))
