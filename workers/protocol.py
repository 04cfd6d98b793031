"""The wire protocol between workers, gateways and clients, defined once.

Both sides import this module: the worker library to publish events, the
gateway to relay, log-read and answer them, the Python client to read them.
It holds

- the event names and their payloads (Stirfried 0.7.0's event table plus
  ``event_id``, 1, 2, 3, ... per task in emission order, and ``timestamp``,
  seconds since the epoch from the worker);
- the names of rooms and Redis keys (all under :data:`RESERVED_PREFIX`);
- the encoding of what crosses Redis: python-socketio's pub/sub ``emit``
  message around a JSON payload, bytes as its base64 attachments, and the
  entries of a task's event log.

``tests/unit/test_protocol_contract.py`` pins the parts that must match
python-socketio's own wire format.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from socketio.packet import Packet

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
# The identity of the log that numbered a task's events (Centrifugo's "epoch"): a new
# log (e.g. after a Redis restart lost the old one) numbers from 1 again under a new
# epoch, so a follower's ``after`` from the old one is known not to apply.
EPOCH = "epoch"

# The keyword argument in which the gateway tells a task where its events go.
ROOM_KWARG = "room"
# The Celery message header naming the arguments only the gateway sets (the room,
# header-mapped and subject arguments); a worker refuses them given positionally.
PROTECTED_ARGUMENTS_HEADER = "stirfried_protected"

# python-socketio's pub/sub channel, shared by every gateway's AsyncRedisManager.
SOCKETIO_CHANNEL = "socketio"
SOCKETIO_NAMESPACE = "/"

# Rooms (and Redis keys) under this prefix belong to Stirfried: clients may not
# pick them as custom rooms, so nobody can inject events into a task's stream.
RESERVED_PREFIX = "stirfried:"


# -- rooms and Redis keys ----------------------------------------------------------------


def task_room(task_id: str) -> str:
    """The Socket.IO room every event of ``task_id`` is sent to (its subscribers)."""
    return f"{RESERVED_PREFIX}task:{task_id}"


def task_id_of_room(room: str) -> str | None:
    """The task id of a :func:`task_room` name, else None."""
    prefix = f"{RESERVED_PREFIX}task:"
    return room[len(prefix) :] if room.startswith(prefix) else None


# A task's keys share the hash tag ``{task_id}``: one Redis Cluster slot per task.


def event_log_key(task_id: str) -> str:
    """The Redis stream holding a task's events."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:events"


def event_sequence_key(task_id: str) -> str:
    """The Redis counter that numbers a task's events."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:seq"


def epoch_key(task_id: str) -> str:
    """The Redis string holding the epoch of a task's log (see :data:`EPOCH`)."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:epoch"


def is_epoch(value: object) -> bool:
    """Whether ``value`` can be an epoch: 1 to 32 lowercase hex digits."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 32
        and value.isascii()
        and all(c in "0123456789abcdef" for c in value)
    )


def tags_key(task_id: str) -> str:
    """The Redis set of a task's tags (``subject:<sub>`` and a token's ``tags``)."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:tags"


def task_record_key(task_id: str) -> str:
    """The Redis hash recording a task the fleet issued: ``name``, ``scheduled``, and as the
    worker reports them ``state``, ``started``, ``finished`` (kept as long as the event log)."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:task"


def tagged_tasks_key(tag: str) -> str:
    """The Redis sorted set of the ids of the tasks carrying ``tag``, scored by when they were
    scheduled: ``subject:<sub>`` lists a token subject's tasks ("my tasks")."""
    return f"{RESERVED_PREFIX}tagged:{tag}"


def idempotency_key(scope: str, key: str) -> str:
    """The Redis string remembering the submission made under ``key`` by ``scope``."""
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()
    return f"{RESERVED_PREFIX}idempotency:{digest}"


# The catalog: what live workers serve. One hash tag, so one script reads it on a Cluster too.
CATALOG_WORKERS_KEY = f"{RESERVED_PREFIX}{{catalog}}:workers"
"""Sorted set: worker hostname -> when its announcement expires (Unix time)."""
CATALOG_ANNOUNCEMENTS_KEY = f"{RESERVED_PREFIX}{{catalog}}:announcements"
"""Hash: worker hostname -> JSON ``{"digest", "queues", "pool"}`` of its announcement."""


def catalog_tasks_key(digest: str) -> str:
    """The JSON list of the tasks a set of identical workers serves, by its digest."""
    return f"{RESERVED_PREFIX}{{catalog}}:tasks:{digest}"


def task_channel(task_id: str) -> str:
    """The pub/sub channel of a task's live events: only gateways that follow the task
    subscribe to it (``SUBSCRIBE``, or ``SSUBSCRIBE`` on a Redis Cluster, where the hash
    tag puts it in the slot of the task's log and counter)."""
    return f"{RESERVED_PREFIX}{{{task_id}}}:live"


def task_id_of_channel(channel: str) -> str | None:
    """The task id of a :func:`task_channel` name, else None."""
    prefix, suffix = f"{RESERVED_PREFIX}{{", "}:live"
    if channel.startswith(prefix) and channel.endswith(suffix):
        return channel[len(prefix) : -len(suffix)]
    return None


# -- payloads --------------------------------------------------------------------------


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


def describe_error(error: Any) -> str | None:
    """An error as clients see it: ``"ValueError: boom"``; ``None`` for no error."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


# -- encoding --------------------------------------------------------------------------


def json_fallback(value: Any) -> Any:
    """What ``json`` cannot encode, so a task's odd return value still arrives: bytes as
    base64 (Socket.IO clients get real binary through attachments instead), sets and
    tuples as lists, dates as ISO 8601, anything else as its repr."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return repr(value)


def dumps(value: Any) -> str:
    """Compact JSON that never fails on a task's odd return value."""
    return json.dumps(value, default=json_fallback, separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class EncodedEvent:
    """A task channel message, split around its payload's first ``{``.

    The worker's Redis script publishes ``head + '{"event_id":N,' + body + tail``,
    so the ``event_id`` it draws lands first in the payload without Lua having to
    re-encode JSON (its cjson turns ``[]`` into ``{}``).
    """

    head: str
    body: str
    tail: str
    attachments: str
    """The base64 attachments as a JSON list (the log keeps them), or ``""``."""


def encode_task_message(event: str, payload: Mapping[str, Any], room: str | None) -> EncodedEvent:
    """Encode ``event`` for its task's own channel (:func:`task_channel`), compactly.

    The message is ``{"event":..,"room":..,"attachments":[..],"payload":{"event_id":N,..}}``:
    ``room`` is where the gateway that scheduled the task delivers it (the scheduling
    client's room, a custom room, or null); the payload comes last, so the worker's script
    can put the ``event_id`` it draws first in it.
    """
    data: Any = dict(payload)
    attachments: list[str] = []
    if Packet.data_is_binary(data):
        data, raw = Packet.deconstruct_binary(data)
        attachments = [base64.b64encode(item).decode("ascii") for item in raw]
    body = dumps(data)
    if not body.startswith("{") or body == "{}":
        raise ValueError("an event payload must be a non-empty JSON object")
    head = (
        '{"event":'
        + dumps(event)
        + ',"room":'
        + dumps(room)
        + ',"attachments":'
        + dumps(attachments)
        + ',"payload":'
    )
    return EncodedEvent(head, body[1:], "}", dumps(attachments) if attachments else "")


@dataclasses.dataclass(frozen=True)
class TaskEvent:
    """One event of a task, live or replayed."""

    event_id: int
    name: str
    payload: dict[str, Any]


def decode_log_entry(fields: Mapping[bytes, bytes]) -> TaskEvent:
    """One entry of a task's event log (``event``, ``data`` and, for bytes, ``attachments``)."""
    payload = json.loads(fields[b"data"])
    if b"attachments" in fields:
        attachments = [base64.b64decode(item) for item in json.loads(fields[b"attachments"])]
        payload = Packet.reconstruct_binary(payload, attachments)
    return TaskEvent(int(payload[EVENT_ID]), fields[b"event"].decode(), payload)


@dataclasses.dataclass(frozen=True)
class LiveEvent:
    """A task event received on its task's channel, with the room it was addressed to."""

    event: TaskEvent
    room: str | None


def decode_live_message(data: bytes | str) -> LiveEvent | None:
    """A message of :func:`encode_task_message`; None for anything else."""
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    payload, event, room = message.get("payload"), message.get("event"), message.get("room")
    if not isinstance(payload, dict) or not isinstance(event, str):
        return None
    attachments = message.get("attachments")
    if attachments:
        payload = Packet.reconstruct_binary(payload, [base64.b64decode(item) for item in attachments])
    event_id = payload.get(EVENT_ID)
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        return None
    return LiveEvent(TaskEvent(event_id, event, payload), room if isinstance(room, str) else None)


def decode_task_message(message: Mapping[str, Any]) -> tuple[str, TaskEvent] | None:
    """The task id and event of a worker's pub/sub ``emit`` message; None for any other message."""
    rooms = message.get("room")
    if not isinstance(rooms, list):
        return None
    task_id = next(
        (found for room in rooms if isinstance(room, str) and (found := task_id_of_room(room))), None
    )
    data = message.get("data")
    if task_id is None or not isinstance(data, list) or not data:
        return None
    payload = data[0]
    if message.get("binary"):
        payload = Packet.reconstruct_binary(payload, [base64.b64decode(item) for item in data[1:]])
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]  # python-socketio wraps the argument list in binary messages
    if not isinstance(payload, dict):
        return None
    event_id = payload.get(EVENT_ID)
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        return None
    return task_id, TaskEvent(event_id, str(message.get("event")), payload)
