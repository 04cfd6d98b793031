"""The catalog: a worker announces the tasks it serves, so gateways can list them and
refuse a name nothing would run.

Each worker (its main process) keeps an announcement in the Stirfried Redis:

- its hostname in the sorted set :data:`~stirfried.protocol.CATALOG_WORKERS_KEY`, scored
  by when the announcement expires (``stirfried_catalog_ttl`` from now, refreshed every
  third of it). A worker that stops or dies stops refreshing it and drops out when it
  expires: a restart within the ttl (systemd's, a rolling deploy's) refuses nothing,
  where a withdrawal at once answered every submit in between with "no live worker
  serves" although the queue would have kept the task for the worker coming back.
  (A hostname missing altogether means Redis lost it, e.g. in a
  restart without persistence: gateways keep what they knew until it would have expired,
  and the worker's next refresh puts it back.)
- its queues, pool and the digest of its task list in
  :data:`~stirfried.protocol.CATALOG_ANNOUNCEMENTS_KEY`;
- the task list itself under its digest (:func:`~stirfried.protocol.catalog_tasks_key`),
  so a hundred identical workers store and send it once.

Why Redis rather than Celery's remote control (``inspect().registered()``): a
broadcast reaches every worker and waits out its timeout (one second by
default) for replies, on every refresh of every gateway, and says nothing about
arguments; a Redis read of the live set is one round trip of well under a
millisecond whatever the fleet's size (``python -m bench`` measures both).

A task is described by :func:`describe_task`: its name, signature, first
docstring paragraph, queue, and a JSON Schema of the arguments a client gives
(``room`` and the arguments the gateway injects left out).
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
import logging
import threading
import time
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import celery
import redis
import redis.cluster

from stirfried import protocol
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

CELERY_BUILT_IN_PREFIX = "celery."

# KEYS: workers (zset), announcements (hash), this worker's task list.
# ARGV: hostname, expiry, forget before (Unix time), announcement JSON, task list JSON, ttl.
# Entries are forgotten a ttl after they expired.
ANNOUNCE_SCRIPT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if #gone > 0 then
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('ZREM', KEYS[1], unpack(gone))
end
return #gone
"""


def describe_task(task: celery.Task[Any, Any], queue: str | None, hidden: Iterable[str]) -> dict[str, Any]:
    """A task's catalog entry: ``name``, ``doc``, ``signature``, ``parameters`` (JSON Schema
    of what a client passes) and ``queue``. ``hidden``: arguments clients cannot set."""
    run = task.run
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        signature = None
    try:
        hints = typing.get_type_hints(run)
    except Exception:  # forward references to names the module cannot resolve
        hints = {}
    hidden = {protocol.ROOM_KWARG, *hidden}
    properties: dict[str, Any] = {}
    required: list[str] = []
    open_ended = False
    shown: list[inspect.Parameter] = []
    if signature is not None:
        for parameter in signature.parameters.values():
            if parameter.name in hidden:
                continue
            if parameter.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                open_ended = open_ended or parameter.kind is inspect.Parameter.VAR_KEYWORD
                shown.append(parameter.replace(annotation=hints.get(parameter.name, parameter.annotation)))
                continue
            schema = {"title": parameter.name, **json_schema(hints.get(parameter.name, Any))}
            if parameter.name in hints:  # shown resolved, not as the string of a lazy annotation
                parameter = parameter.replace(annotation=hints[parameter.name])
            if parameter.default is inspect.Parameter.empty:
                required.append(parameter.name)
            elif _is_json(parameter.default):
                schema["default"] = parameter.default
            properties[parameter.name] = schema
            shown.append(parameter)
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": open_ended,
    }
    return {
        "name": task.name,
        "doc": first_paragraph(task.__doc__ if task.__doc__ != type(task).__doc__ else run.__doc__),
        "signature": str(signature.replace(parameters=shown, return_annotation=inspect.Signature.empty))
        if signature is not None
        else "(...)",
        "parameters": parameters,
        "queue": queue,
    }


def first_paragraph(doc: str | None) -> str | None:
    """The first paragraph of a docstring, on one line; None without one."""
    if not doc:
        return None
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(paragraph.split()) or None


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a type annotation, as far as JSON can say it; ``{}`` (anything)
    for what it cannot (``Any``, classes of the application, bytes over Socket.IO)."""
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if annotation in simple:
        return {"type": simple[annotation]}
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [json_schema(argument) for argument in arguments]}
    if origin is typing.Literal:
        return {"enum": [value for value in arguments if _is_json(value)]}
    if origin is typing.Annotated:
        return json_schema(arguments[0])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation if _is_json(member.value)]}
    if annotation in (list, tuple, set, frozenset) or origin in (list, set, frozenset, Sequence):
        schema: dict[str, Any] = {"type": "array"}
        if arguments:
            schema["items"] = json_schema(arguments[0])
        return schema
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return {"type": "array", "items": json_schema(arguments[0])}
        return {"type": "array", "prefixItems": [json_schema(argument) for argument in arguments]}
    if annotation is dict or origin in (dict, Mapping):
        schema = {"type": "object"}
        if len(arguments) == 2:
            schema["additionalProperties"] = json_schema(arguments[1])
        return schema
    return {}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def served_tasks(app: celery.Celery[Any], settings: StirfriedSettings) -> list[dict[str, Any]]:
    """The catalog entries of the tasks this worker serves: its Stirfried tasks, never Celery's
    built-in ones, sorted by name."""
    from stirfried.celery import StirfriedTask  # the task class imports this module's announcer

    entries = []
    for name, task in sorted(app.tasks.items()):
        if name.startswith(CELERY_BUILT_IN_PREFIX) or not isinstance(task, StirfriedTask):
            continue
        hidden = list(settings.header_task_map.get(name, {}).values())
        if settings.subject_kwarg:
            hidden.append(settings.subject_kwarg)
        entries.append(describe_task(task, _queue_of(app, name), hidden))
    return entries


def _queue_of(app: celery.Celery[Any], name: str) -> str | None:
    """The queue Celery routes ``name`` to (``task_routes``, the task's ``queue``, the default)."""
    try:
        route = app.amqp.router.route({}, name)
    except Exception:
        return None
    queue = route.get("queue")
    return getattr(queue, "name", queue) if queue is not None else None


class Announcer:
    """Keeps one worker's announcement fresh from a daemon thread of its main process."""

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        hostname: str,
        tasks: list[dict[str, Any]],
        queues: Sequence[str],
        pool: str,
        ttl: int,
    ) -> None:
        self._redis = client
        self._script = client.register_script(ANNOUNCE_SCRIPT)
        self._hostname = hostname
        self._ttl = ttl
        # Not sort_keys: the schema's properties keep the signature's order (forms show it).
        self._tasks = json.dumps(tasks, separators=(",", ":"))
        self._digest = hashlib.sha256(self._tasks.encode()).hexdigest()[:32]
        self._announcement = json.dumps(
            {"digest": self._digest, "queues": sorted(queues), "pool": pool}, separators=(",", ":")
        )
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stirfried-catalog", daemon=True)

    def start(self) -> None:
        """Announce now (so a gateway knows the tasks once the worker answers), then keep it fresh."""
        self.announce()
        self._thread.start()

    def announce(self) -> None:
        now = time.time()
        try:
            self._script(
                keys=[
                    protocol.CATALOG_WORKERS_KEY,
                    protocol.CATALOG_ANNOUNCEMENTS_KEY,
                    protocol.catalog_tasks_key(self._digest),
                ],
                args=[
                    self._hostname,
                    now + self._ttl,
                    now - self._ttl,
                    self._announcement,
                    self._tasks,
                    self._ttl,
                ],
            )
        except Exception as error:
            logger.warning("could not announce this worker's tasks to the Stirfried catalog: %s", error)

    def stop(self) -> None:
        """Stop refreshing the announcement; it expires within the ttl (see the module's
        docstring for why it is not withdrawn at once)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(0.5, self._ttl / 3)
        while not self._stopped.wait(interval):
            self.announce()
