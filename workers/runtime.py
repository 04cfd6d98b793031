"""What a worker process needs to report: its settings, its Redis emitter and, in the
worker's main process, the catalog announcer.

Kept on the Celery app (not in a module global) and rebuilt after a fork, so
prefork children never share their parent's Redis socket.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import celery

from stirfried import protocol
from stirfried.catalog import Announcer, served_tasks
from stirfried.emitter import TaskEventEmitter
from stirfried.settings import StirfriedSettings, settings_from_prefixed

_RUNTIME_ATTRIBUTE = "_stirfried_runtime"
_ANNOUNCER_ATTRIBUTE = "_stirfried_announcer"


@dataclasses.dataclass(frozen=True)
class WorkerRuntime:
    """One worker process's settings and its one Redis emitter (None without ``redis_url``)."""

    pid: int
    settings: StirfriedSettings
    emitter: TaskEventEmitter | None


def runtime_for(app: celery.Celery[Any]) -> WorkerRuntime:
    """This process's runtime for ``app``; raises ConfigError for bad ``stirfried_*`` settings."""
    runtime: WorkerRuntime | None = getattr(app, _RUNTIME_ATTRIBUTE, None)
    if runtime is None or runtime.pid != os.getpid():
        settings = settings_from_prefixed(dict(app.conf.items()))
        emitter = (
            TaskEventEmitter(
                settings.redis_url,
                log_max_length=settings.event_log_max_length,
                log_ttl=settings.event_log_ttl,
                log_enabled=settings.event_log,
                cluster=settings.redis_cluster,
            )
            if settings.redis_url
            else None
        )
        runtime = WorkerRuntime(os.getpid(), settings, emitter)
        setattr(app, _RUNTIME_ATTRIBUTE, runtime)
    return runtime


def emit_with(
    runtime: WorkerRuntime | None,
    event: str,
    payload: dict[str, Any],
    task_id: Any,
    kwargs: Mapping[str, Any] | None,
    state: str | None = None,
    final: bool = False,
) -> None:
    """Emit ``event`` of ``task_id`` to its followers and the room in its ``kwargs``."""
    if runtime is None or runtime.emitter is None or not isinstance(task_id, str):
        return
    room = kwargs.get(protocol.ROOM_KWARG) if isinstance(kwargs, Mapping) else None
    if not isinstance(room, str) or not room or room == runtime.settings.sentinel_room:
        room = None
    runtime.emitter.emit(event, payload, task_id, room, state, final)


def start_announcing(app: celery.Celery[Any], hostname: str, queues: list[str], pool: str) -> None:
    """Announce the worker's tasks to the catalog, and keep doing it until it stops."""
    runtime = runtime_for(app)
    if runtime.emitter is None:
        return
    announcer = Announcer(
        runtime.emitter.client,
        hostname,
        served_tasks(app, runtime.settings),
        queues,
        pool,
        runtime.settings.catalog_ttl,
    )
    setattr(app, _ANNOUNCER_ATTRIBUTE, announcer)
    announcer.start()


def stop_announcing(app: celery.Celery[Any]) -> None:
    """Withdraw the worker from the catalog (it is shutting down)."""
    announcer: Announcer | None = getattr(app, _ANNOUNCER_ATTRIBUTE, None)
    if announcer is not None:
        setattr(app, _ANNOUNCER_ATTRIBUTE, None)
        announcer.stop()
