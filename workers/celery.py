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

Events go to the room the gateway put in the task's ``room`` keyword argument
(none for the sentinel room) and to the task's own room, where subscribers
receive them; each is numbered and kept in the task's event log. Without
``stirfried_redis_url`` nothing is emitted and tasks behave as plain functions,
which keeps them unit-testable.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

import celery
from billiard.exceptions import WorkerLostError
from celery import signals, states

from stirfried import protocol
from stirfried.config import config_path_from_environment, load_config
from stirfried.runtime import WorkerRuntime, emit_with, runtime_for, start_announcing, stop_announcing
from stirfried.settings import ConfigError

__all__ = ["ConfigError", "StirfriedTask", "configure_from_file"]

logger = logging.getLogger(__name__)


def configure_from_file(app: celery.Celery[Any], path: str | os.PathLike[str] | None = None) -> None:
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


class StirfriedTask(celery.Task[Any, Any]):
    """Celery task base class that reports progress, retries, failure and results.

    Tasks must accept a ``room=None`` keyword argument: the gateway uses it to
    tell the worker where the events go.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task, unless a client filled an argument only the gateway may set.

        The gateway removes such arguments from ``kwargs``; the message header
        :data:`stirfried.protocol.PROTECTED_ARGUMENTS_HEADER` names them so that
        positional values (``"args": ["bob@x", "admin"]`` for ``user``) are refused too.
        """
        if self.request.called_directly:  # a plain function call, not a worker's
            return super().__call__(*args, **kwargs)
        if args:
            check_positional(self._positional_parameters, args, self._protected_arguments())
        # What Celery's tracer calls when a task has no __call__ of its own: the
        # request it pushed (id, headers) stays the task's request.
        return self.run(*args, **kwargs)

    @functools.cached_property
    def _positional_parameters(self) -> tuple[str, ...] | None:
        # Read once per task and process: inspect.signature() on every call cost more
        # than the rest of this check together.
        return positional_parameters(self.run)

    def _protected_arguments(self) -> tuple[str, ...]:
        request = self.request
        names = getattr(request, protocol.PROTECTED_ARGUMENTS_HEADER, None)
        if names is None and isinstance(request.headers, Mapping):
            names = request.headers.get(protocol.PROTECTED_ARGUMENTS_HEADER)
        return tuple(name for name in names or () if isinstance(name, str))

    def emit_progress(self, current: Any, total: Any, info: Any = None) -> None:
        """Send ``on_progress`` to the task's rooms. Needs ``bind=True`` on the task."""
        request = self.request
        if request.id is None:  # called directly, not as a task: nobody follows it
            return
        self._emit(
            protocol.ON_PROGRESS,
            protocol.progress(request.id, self.name, current, total, info),
            request.id,
            request.kwargs,
        )

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self._emit(
            protocol.ON_RETRY,
            protocol.problem(task_id, self.name, self._einfo(einfo)),
            task_id,
            kwargs,
            state=states.RETRY,
        )

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self._emit(
            protocol.ON_FAILURE, protocol.problem(task_id, self.name, self._einfo(einfo)), task_id, kwargs
        )

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self._emit(protocol.ON_SUCCESS, protocol.success(task_id, self.name, retval), task_id, kwargs)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if status == states.SUCCESS:
            payload = protocol.returned(task_id, self.name, status, retval)
        elif status == states.FAILURE:
            payload = protocol.returned(task_id, self.name, status, self._error_text(retval))
        else:
            return
        self._emit(protocol.ON_RETURN, payload, task_id, kwargs, state=status, final=True)

    def report_lost(self, task_id: str, kwargs: Any, einfo: Any, exc: BaseException) -> None:
        """The pool process running the task died (SIGKILL, out of memory) and the task
        will not run again: say so, instead of leaving its clients waiting forever.

        Runs in the worker's main process, from Celery's ``task_failure`` signal.
        """
        self._emit(
            protocol.ON_FAILURE, protocol.problem(task_id, self.name, self._einfo(einfo)), task_id, kwargs
        )
        self._emit(
            protocol.ON_RETURN,
            protocol.returned(task_id, self.name, states.FAILURE, self._error_text(exc)),
            task_id,
            kwargs,
            state=states.FAILURE,
            final=True,
        )

    def emit_lifecycle(self, event: str, task_id: str, kwargs: Any, **details: Any) -> None:
        """Send one of Celery's lifecycle events, when ``stirfried_celery_events`` is on."""
        runtime = self._runtime()
        if runtime is not None and runtime.settings.celery_events:
            self._emit(event, protocol.lifecycle(task_id, self.name, **details), task_id, kwargs)

    def report_revoked(self, task_id: str, kwargs: Any, terminated: bool, expired: bool) -> None:
        """The task was revoked (before it ran, or terminated while running): its final event,
        whatever ``stirfried_celery_events`` says, so its followers stop waiting."""
        self._emit(
            protocol.ON_REVOKED,
            protocol.lifecycle(task_id, self.name, terminated=terminated, expired=expired),
            task_id,
            kwargs,
            state=states.REVOKED,
            final=True,
        )

    def record_started(self, task_id: Any) -> None:
        """Note the start in the task's record (for "my tasks"); ``on_started`` too if configured."""
        runtime = self._runtime()
        if runtime is not None and runtime.emitter is not None and isinstance(task_id, str):
            runtime.emitter.record_started(task_id)

    def _emit(
        self,
        event: str,
        payload: dict[str, Any],
        task_id: Any,
        kwargs: Mapping[str, Any] | None,
        state: str | None = None,
        final: bool = False,
    ) -> None:
        emit_with(self._runtime(), event, payload, task_id, kwargs, state, final)

    def _runtime(self) -> WorkerRuntime | None:
        try:
            return runtime_for(self.app)
        except ConfigError:
            logger.exception("Stirfried settings in the Celery configuration are invalid")
            return None

    def _error_info_on(self) -> bool:
        try:
            return runtime_for(self.app).settings.error_info
        except ConfigError:
            return False

    def _einfo(self, einfo: Any) -> str | None:
        return str(einfo) if self._error_info_on() and einfo is not None else None

    def _error_text(self, exc: Any) -> str | None:
        return protocol.describe_error(exc) if self._error_info_on() else None


class ProtectedArgument(TypeError):
    """A client passed an argument positionally that only the gateway may set."""


def positional_parameters(function: Any) -> tuple[str, ...] | None:
    """The parameters positional arguments fill, in order; None if ``function`` has no
    signature to read."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names: list[str] = []
    for parameter in parameters:
        if parameter.kind not in positional:
            break  # *args takes the rest; keyword-only parameters take none
        names.append(parameter.name)
    return tuple(names)


def check_positional(
    parameters: tuple[str, ...] | None, args: tuple[Any, ...], protected: tuple[str, ...]
) -> None:
    """Raise ProtectedArgument when ``args`` would fill one of ``protected``'s ``parameters``."""
    if not protected or parameters is None:
        return
    filled = sorted(set(parameters[: len(args)]) & set(protected))
    if filled:
        raise ProtectedArgument(
            f"argument {filled[0]!r} is set by the Stirfried gateway and cannot be passed positionally"
        )


# Celery's lifecycle, relayed when ``stirfried_celery_events`` is on. Signals
# rather than Celery's event stream: they need no ``-E`` on the workers, and the
# events are numbered and logged like every other event of the task.


@signals.task_received.connect
def _on_task_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    task = getattr(request, "task", None)
    if isinstance(task, StirfriedTask):
        task.emit_lifecycle(protocol.ON_RECEIVED, request.id, request.kwargs)


@signals.task_prerun.connect
def _on_task_prerun(sender: Any = None, task_id: Any = None, kwargs: Any = None, **_: Any) -> None:
    if isinstance(sender, StirfriedTask):
        sender.emit_lifecycle(protocol.ON_STARTED, task_id, kwargs)
        if not (sender.request.called_directly or sender.request.is_eager):
            sender.record_started(task_id)


@signals.task_failure.connect
def _on_task_failure(
    sender: Any = None,
    task_id: Any = None,
    exception: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    # Failures inside the task already reported through on_failure; only a lost
    # pool process is reported here (by the main process, which survived).
    if (
        isinstance(sender, StirfriedTask)
        and isinstance(exception, WorkerLostError)
        and isinstance(task_id, str)
    ):
        sender.report_lost(task_id, kwargs, einfo, exception)


@signals.task_revoked.connect
def _on_task_revoked(
    sender: Any = None, request: Any = None, terminated: Any = False, expired: Any = False, **_: Any
) -> None:
    if isinstance(sender, StirfriedTask) and request is not None and isinstance(request.id, str):
        sender.report_revoked(request.id, getattr(request, "kwargs", None), bool(terminated), bool(expired))


@signals.task_unknown.connect
def _on_task_unknown(
    sender: Any = None, name: Any = None, id: Any = None, message: Any = None, **_: Any
) -> None:
    """A worker got a task name it does not run: Celery drops the message and stores a
    NotRegistered failure; tell the task's clients now, instead of letting them wait
    for a result that never comes. Always named, whatever ``stirfried_error_info``
    says: it reveals only the name the client sent."""
    app = getattr(sender, "app", None)
    if app is None or not isinstance(id, str):
        return
    try:
        runtime = runtime_for(app)
    except ConfigError:
        logger.exception("Stirfried settings in the Celery configuration are invalid")
        return
    task_name = name if isinstance(name, str) else "?"
    kwargs = _message_kwargs(message)
    worker = getattr(sender, "hostname", "?")
    error = f"NotRegistered: {task_name!r} (no task of that name on worker {worker})"
    emit_with(runtime, protocol.ON_FAILURE, protocol.problem(id, task_name, None), id, kwargs)
    emit_with(
        runtime, protocol.ON_RETURN, protocol.returned(id, task_name, states.FAILURE, error), id, kwargs
    )


def _message_kwargs(message: Any) -> Mapping[str, Any] | None:
    """The keyword arguments of a task message (protocol 2: ``[args, kwargs, embed]``)."""
    try:
        body = message.decode()
    except Exception:
        return None
    if isinstance(body, (list, tuple)) and len(body) >= 2 and isinstance(body[1], Mapping):
        return body[1]
    return None


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Announce the worker's tasks to the catalog (``GET /tasks``), from its main process."""
    app = getattr(sender, "app", None)
    if app is None:
        return
    try:
        queues = [queue.name for queue in sender.task_consumer.queues]
    except AttributeError:
        queues = []
    pool = type(getattr(sender, "pool", None)).__module__.rsplit(".", 1)[-1]
    try:
        start_announcing(app, str(getattr(sender, "hostname", "") or os.getpid()), queues, pool)
    except ConfigError:
        logger.exception("Stirfried settings in the Celery configuration are invalid")


@signals.worker_shutdown.connect
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        stop_announcing(app)
