"""The worker library: ``StirfriedTask`` and the one call that configures a worker.

Use it as the base class of your tasks::

    from celery import Celery
    from stirfried.celery import StirfriedTask, configure_from_file

    app = Celery("tasks", task_cls=StirfriedTask)
    configure_from_file(app, "/etc/stirfried/stirfried.yaml")

    @app.task(bind=True)
    def add(self, x, y, room=None):
        self.emit_progress(50, 100)
        return x + y

Events go to the room the gateway put in the task's ``room`` keyword argument.
Without ``stirfried_redis_url`` (or with the sentinel room, or no ``room`` at
all) nothing is emitted and tasks behave as plain functions, which keeps them
unit-testable.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import celery
from celery import states

from stirfried import events
from stirfried.config import config_path_from_environment, load_config
from stirfried.emitter import TaskEventEmitter
from stirfried.settings import ConfigError, StirfriedSettings, settings_from_prefixed

__all__ = ["ConfigError", "StirfriedTask", "configure_from_file"]

logger = logging.getLogger(__name__)

ROOM_KWARG = "room"


def configure_from_file(app: celery.Celery, path: str | os.PathLike[str] | None = None) -> None:
    """Configure a Celery app from the Stirfried YAML file the gateway reads too.

    ``path`` defaults to the ``STIRFRIED_CONFIG`` environment variable. Celery
    settings and ``stirfried_*`` settings land in ``app.conf``; ``socketio_*``
    settings concern only the gateway and are ignored. Raises ConfigError naming
    the bad key or file.
    """
    path = path or config_path_from_environment()
    if not path:
        raise ConfigError("no configuration file: pass a path or set STIRFRIED_CONFIG")
    app.conf.update(load_config(path).as_flat())


@dataclasses.dataclass(frozen=True)
class _WorkerRuntime:
    """What a worker process needs to emit: its settings and its one Redis emitter."""

    pid: int
    settings: StirfriedSettings
    emitter: TaskEventEmitter | None


def _runtime_for(app: celery.Celery) -> _WorkerRuntime:
    # Kept on the Celery app (not in a module global), and rebuilt after a fork
    # so prefork children never share their parent's Redis socket.
    runtime: _WorkerRuntime | None = getattr(app, "_stirfried_runtime", None)
    if runtime is None or runtime.pid != os.getpid():
        settings = settings_from_prefixed(dict(app.conf.items()))
        emitter = TaskEventEmitter(settings.redis_url) if settings.redis_url else None
        runtime = _WorkerRuntime(os.getpid(), settings, emitter)
        app._stirfried_runtime = runtime  # type: ignore[attr-defined]
    return runtime


class StirfriedTask(celery.Task):  # type: ignore[misc]
    """Celery task base class that reports progress, retries, failure and results.

    Tasks must accept a ``room=None`` keyword argument: the gateway uses it to
    tell the worker where the events go.
    """

    def emit_progress(self, current: Any, total: Any, info: Any = None) -> None:
        """Send ``on_progress`` to the task's room. Needs ``bind=True`` on the task."""
        request = self.request
        self._emit(
            events.ON_PROGRESS,
            events.progress(request.id, self.name, current, total, info),
            request.kwargs,
        )

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self._emit(events.ON_RETRY, events.problem(task_id, self.name, self._einfo(einfo)), kwargs)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self._emit(events.ON_FAILURE, events.problem(task_id, self.name, self._einfo(einfo)), kwargs)

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self._emit(events.ON_SUCCESS, events.success(task_id, self.name, retval), kwargs)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if status == states.SUCCESS:
            self._emit(events.ON_RETURN, events.returned(task_id, self.name, status, retval), kwargs)
        elif status == states.FAILURE:
            error = self._error_text(retval)
            self._emit(events.ON_RETURN, events.returned(task_id, self.name, status, error), kwargs)

    def _emit(self, event: str, payload: dict[str, Any], kwargs: Mapping[str, Any] | None) -> None:
        room = (kwargs or {}).get(ROOM_KWARG)
        if not isinstance(room, str) or not room:
            return
        try:
            runtime = _runtime_for(self.app)
        except ConfigError:
            logger.exception("Stirfried settings in the Celery configuration are invalid")
            return
        if runtime.emitter is None or room == runtime.settings.sentinel_room:
            return
        runtime.emitter.emit(event, payload, room)

    def _error_info_on(self) -> bool:
        try:
            return _runtime_for(self.app).settings.error_info
        except ConfigError:
            return False

    def _einfo(self, einfo: Any) -> str | None:
        return str(einfo) if self._error_info_on() and einfo is not None else None

    def _error_text(self, exc: Any) -> str | None:
        if not self._error_info_on():
            return None
        if isinstance(exc, BaseException):
            return f"{type(exc).__name__}: {exc}"
        return str(exc)
