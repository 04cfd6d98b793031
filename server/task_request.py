"""Parse the task object clients send into a typed value, or a clear error.

This is the one place where client input is validated; everything after it
trusts a :class:`TaskRequest`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from stirfried import protocol
from stirfried.server.errors import InvalidRequest, TooLarge

MAX_TASK_NAME_LENGTH = 255
MAX_ROOM_LENGTH = 255
MAX_TASK_ID_LENGTH = 255
# Celery's own ids are UUIDs; this keeps ids safe in URLs, logs and Redis keys.
TASK_ID = re.compile(r"[!-~]+")
MAX_QUEUE_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Celery's task priorities that every broker transport honours (Redis: 0-9; RabbitMQ takes more).
MAX_PRIORITY = 9
OPTION_FIELDS = ("countdown", "eta", "expires", "priority", "queue")
CALL_FIELDS = ("task_name", "args", "kwargs", *OPTION_FIELDS)
TASK_FIELDS = (*CALL_FIELDS, "room", "chain", "idempotency_key")


@dataclasses.dataclass(frozen=True)
class TaskCall:
    """One task to run: its name and the arguments the client gave."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Celery options the client set: ``countdown``, ``expires`` (seconds), ``eta``,
    ``expires`` (aware datetimes), ``priority``, ``queue``; checked against the settings later."""


@dataclasses.dataclass(frozen=True)
class TaskRequest:
    """A validated task object: the main task, an optional room, the chain as sent."""

    call: TaskCall
    room: str | None = None
    chain: tuple[TaskCall, ...] = ()
    idempotency_key: str | None = None

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
        _task_call(_task_object(item, f"chain[{index}]", CALL_FIELDS), f"chain[{index}].")
        for index, item in enumerate(chain_data)
    )
    room = fields.get("room")
    if room is not None and (not isinstance(room, str) or not 0 < len(room) <= MAX_ROOM_LENGTH):
        raise InvalidRequest(f"'room' must be a non-empty string of at most {MAX_ROOM_LENGTH} characters")
    if room is not None and room.startswith(protocol.RESERVED_PREFIX):
        raise InvalidRequest(f"rooms starting with {protocol.RESERVED_PREFIX!r} are reserved for Stirfried")
    return TaskRequest(
        call=_task_call(fields, ""),
        room=room,
        chain=chain,
        idempotency_key=parse_idempotency_key(fields.get("idempotency_key"), "'idempotency_key'"),
    )


def parse_idempotency_key(value: Any, what: str) -> str | None:
    """An idempotency key: 1 to 255 visible ASCII characters, or absent."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH
        or not TASK_ID.fullmatch(value)
    ):
        raise InvalidRequest(
            f"{what} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters (no spaces)"
        )
    return value


def parse_task_id(value: Any) -> str:
    """Validate a task id given by a client."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("a task id must be a non-empty string")
    if len(value) > MAX_TASK_ID_LENGTH or not TASK_ID.fullmatch(value):
        raise InvalidRequest(
            f"a task id must be 1 to {MAX_TASK_ID_LENGTH} visible ASCII characters (no spaces)"
        )
    return value


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
    options = {key: _option(key, fields[key], prefix) for key in OPTION_FIELDS if fields.get(key) is not None}
    if "countdown" in options and "eta" in options:
        raise InvalidRequest(f"'{prefix}countdown' and '{prefix}eta' cannot both be set")
    return TaskCall(name=name, args=tuple(args), kwargs=dict(kwargs), options=options)


def _option(key: str, value: Any, prefix: str) -> Any:
    """One scheduling option, type-checked (its bounds depend on the settings: scheduling.py)."""
    name = f"'{prefix}{key}'"
    if key == "countdown" or (key == "expires" and not isinstance(value, str)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidRequest(
                f"{name} must be a number of seconds" + (" or an ISO 8601 time" if key == "expires" else "")
            )
        if value < 0 or (key == "expires" and value == 0):
            raise InvalidRequest(f"{name} must be " + ("> 0" if key == "expires" else ">= 0"))
        return float(value)
    if key in ("eta", "expires"):
        return parse_time(value, name)
    if key == "priority":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
            raise InvalidRequest(f"{name} must be an integer from 0 to {MAX_PRIORITY}")
        return value
    if not isinstance(value, str) or not 0 < len(value) <= MAX_QUEUE_LENGTH:
        raise InvalidRequest(f"{name} must be a queue name")
    return value


def parse_time(value: Any, what: str) -> datetime.datetime:
    """An ISO 8601 time with its offset (none: UTC), as an aware datetime."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidRequest(f"{what} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidRequest(f"{what} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class SubscriptionRequest:
    """``{task_id, after, token, epoch}`` of ``subscribe_task``."""

    task_id: str
    after: int
    token: str | None
    epoch: str | None = None
    """The epoch ``after`` belongs to (None: trust ``after`` as is)."""


SUBSCRIPTION_FIELDS = ("task_id", "after", "token", "epoch")


def parse_epoch(value: Any) -> str | None:
    """The ``epoch`` of the events a follower saw, if it sends one."""
    if value is None:
        return None
    if not protocol.is_epoch(value):
        raise InvalidRequest("'epoch' must be the epoch of an event the client received")
    return str(value)


def parse_last_event_id(value: Any) -> tuple[int, str | None]:
    """An SSE ``Last-Event-ID`` (or ``?after=``): ``<epoch>:<event_id>`` or ``<event_id>``."""
    if isinstance(value, str) and ":" in value:
        epoch, _, after = value.partition(":")
        return parse_after(after), parse_epoch(epoch)
    return parse_after(value), None


def parse_after(value: Any) -> int:
    """The ``event_id`` a follower last saw: an integer >= 0 (0 or absent: replay everything)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidRequest("'after' (the last event_id seen) must be an integer >= 0")
    return value


def parse_task_reference(data: Any) -> tuple[str, str | None]:
    """``task_id`` or ``{task_id, token}`` (for ``task_info`` and ``revoke_task``)."""
    if not isinstance(data, Mapping):
        return parse_task_id(data), None
    for key in data:
        if key not in ("task_id", "token"):
            raise InvalidRequest(f"unknown field {key!r} (allowed: task_id, token)")
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise InvalidRequest("'token' must be a string")
    return parse_task_id(data.get("task_id")), token


# Signals a client may ask a terminated task's process to get (Celery's names).
TERMINATE_SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGUSR1")


@dataclasses.dataclass(frozen=True)
class RevokeRequest:
    """``revoke_task``'s ``{task_id, token, terminate, signal}`` (or a bare task id)."""

    task_id: str
    token: str | None = None
    terminate: bool = False
    signal: str | None = None


def parse_revoke(data: Any) -> RevokeRequest:
    """Validate a ``revoke_task`` request."""
    if not isinstance(data, Mapping):
        return RevokeRequest(parse_task_id(data))
    for key in data:
        if key not in ("task_id", "token", "terminate", "signal"):
            raise InvalidRequest(f"unknown field {key!r} (allowed: task_id, token, terminate, signal)")
    task_id, token = parse_task_reference({key: data[key] for key in ("task_id", "token") if key in data})
    terminate = data.get("terminate", False)
    if not isinstance(terminate, bool):
        raise InvalidRequest("'terminate' must be true or false")
    return RevokeRequest(task_id, token, terminate, parse_signal(data.get("signal"), terminate))


def parse_signal(value: Any, terminate: bool) -> str | None:
    """The signal of a terminate: one of :data:`TERMINATE_SIGNALS` (default: Celery's SIGTERM)."""
    if value is None:
        return None
    if not terminate:
        raise InvalidRequest("'signal' goes with 'terminate': true")
    if value not in TERMINATE_SIGNALS:
        raise InvalidRequest(f"'signal' must be one of {', '.join(TERMINATE_SIGNALS)}")
    return str(value)


def parse_flag(value: str | None, what: str) -> bool:
    """A query flag: ``true``/``1`` or ``false``/``0`` (absent: false)."""
    if value is None or value in ("false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise InvalidRequest(f"{what} must be true or false")


MAX_PAGE = 100


@dataclasses.dataclass(frozen=True)
class PageRequest:
    """``{limit, cursor}`` of a listing."""

    limit: int = 20
    cursor: float | None = None


def parse_page(data: Any) -> PageRequest:
    """``{limit, cursor}`` (or nothing); ``limit`` 1 to 100, ``cursor`` from a previous page."""
    if data is None:
        return PageRequest()
    if not isinstance(data, Mapping):
        raise InvalidRequest("the request must be an object {limit, cursor}")
    for key in data:
        if key not in ("limit", "cursor"):
            raise InvalidRequest(f"unknown field {key!r} (allowed: limit, cursor)")
    limit = data.get("limit", 20)
    if isinstance(limit, str) and limit.isascii() and limit.isdigit() and len(limit) < 4:
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}")
    cursor = data.get("cursor")
    if cursor is None:
        return PageRequest(limit)
    try:
        position = float(cursor) if isinstance(cursor, str) and len(cursor) < 32 else math.nan
    except ValueError:
        position = math.nan
    if not math.isfinite(position):
        raise InvalidRequest("'cursor' must be the 'next' of a previous page")
    return PageRequest(limit, position)


def parse_subscription(data: Any) -> SubscriptionRequest:
    """Validate a ``subscribe_task`` request."""
    if not isinstance(data, Mapping):
        raise InvalidRequest("subscribe_task takes an object {task_id, after, token}")
    for key in data:
        if key not in SUBSCRIPTION_FIELDS:
            raise InvalidRequest(f"unknown field {key!r} (allowed: {', '.join(SUBSCRIPTION_FIELDS)})")
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise InvalidRequest("'token' must be a string")
    return SubscriptionRequest(
        parse_task_id(data.get("task_id")),
        parse_after(data.get("after")),
        token,
        parse_epoch(data.get("epoch")),
    )


# Python refuses to parse integers of more than 4300 digits (a ValueError deep in json).
MAX_INTEGER_DIGITS = 4000


class InvalidNumber:
    """A number JSON parsers accept but tasks cannot take: ``NaN``, ``Infinity``, or an
    integer of thousands of digits. :class:`ClientJson` parses it into this marker, and
    :func:`check_shape` refuses it with a message, wherever it sits."""

    def __init__(self, description: str) -> None:
        self.description = description


def _parse_int(text: str) -> int | InvalidNumber:
    if len(text) > MAX_INTEGER_DIGITS:
        return InvalidNumber(f"an integer of {len(text.lstrip('-'))} digits")
    return int(text)


def _parse_constant(text: str) -> InvalidNumber:
    return InvalidNumber(text)


class ClientJson:
    """The JSON codec for what clients send: HTTP bodies, and Socket.IO packets (it is the
    ``json`` module python-socketio is given). Parsing never raises on a number."""

    @staticmethod
    def loads(text: str | bytes, **options: Any) -> Any:
        return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant, **options)

    @staticmethod
    def dumps(value: Any, **options: Any) -> str:
        return json.dumps(value, **options)


def check_shape(value: Any, max_nesting: int, what: str) -> None:
    """Raise InvalidRequest when ``value`` nests lists/objects deeper than ``max_nesting``,
    holds an :class:`InvalidNumber`, or a map key that is not a string (msgpack allows any)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, InvalidNumber):
            raise InvalidRequest(f"'{what}' contains {item.description}, which is not a number tasks accept")
        if isinstance(item, (list, tuple, dict)):
            if depth >= max_nesting:
                raise InvalidRequest(f"'{what}' nests deeper than {max_nesting} levels")
            if isinstance(item, dict) and not all(isinstance(key, str) for key in item):
                raise InvalidRequest(f"'{what}' contains an object whose keys are not all strings")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def check_size(value: Any, max_bytes: int, what: str) -> None:
    """Raise TooLarge when ``value`` would take more than ``max_bytes`` as JSON."""

    def stand_in(item: Any) -> Any:
        if isinstance(item, bytes):
            return "x" * len(item)
        return "x" * 20  # an InvalidNumber, refused later with its own message

    try:
        size = len(json.dumps(value, default=stand_in))
    except TypeError as error:  # msgpack maps may have bytes keys
        raise InvalidRequest(f"the {what} contains an object whose keys are not all strings") from error
    except ValueError as error:
        raise InvalidRequest(f"the {what} cannot be read as JSON: {error}") from error
    if size > max_bytes:
        raise TooLarge(f"the {what} is larger than {max_bytes} bytes")
