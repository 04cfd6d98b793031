"""Turn a validated request into the Celery messages to publish.

Pure functions: where the events of a task go (its room), which keyword
arguments the gateway injects (``room`` and header-mapped values), and the
order of a chain. Kept apart from Celery so each rule is unit-testable.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from stirfried.celery import ROOM_KWARG
from stirfried.server.task_request import TaskCall, TaskRequest
from stirfried.settings import StirfriedSettings


@dataclasses.dataclass(frozen=True)
class PlannedTask:
    """A task ready to publish: the final arguments and a task id chosen up front."""

    name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    task_id: str


@dataclasses.dataclass(frozen=True)
class PublishPlan:
    """The main task and the tasks that run after it, in execution order."""

    main: PlannedTask
    followers: tuple[PlannedTask, ...] = ()


def resolve_room(requested: str | None, default_room: str, settings: StirfriedSettings) -> str:
    """The room a task's events go to.

    The sentinel room is always honoured (it only takes events away); any other
    requested room only with ``custom_rooms`` on.
    """
    if requested is None:
        return default_room
    if requested == settings.sentinel_room or settings.custom_rooms:
        return requested
    return default_room


def mapped_headers(headers: Mapping[str, str], settings: StirfriedSettings) -> dict[str, str]:
    """The header values any task's header map needs, keyed by lower-case header name.

    ``headers`` may be case-insensitive (aiohttp's) or not; the result is a plain dict
    small enough to keep in a Socket.IO session.
    """
    wanted = {header.lower() for mapping in settings.header_task_map.values() for header in mapping}
    lowered = {name.lower(): value for name, value in headers.items()}
    return {name: lowered[name] for name in wanted if name in lowered}


def task_kwargs(
    call: TaskCall,
    room: str,
    headers: Mapping[str, str],
    settings: StirfriedSettings,
    subject: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments a task receives.

    Clients can set neither ``room``, nor a header-mapped argument, nor the
    subject argument through ``kwargs``: all are removed, then set from the room,
    the request's headers and the token's subject (a mapped argument stays
    absent when its header is missing, the subject one for anonymous clients).
    """
    mapping = settings.header_task_map.get(call.name, {})
    protected = {ROOM_KWARG, *mapping.values()}
    if settings.subject_kwarg:
        protected.add(settings.subject_kwarg)
    kwargs = {key: value for key, value in call.kwargs.items() if key not in protected}
    for header, kwarg in mapping.items():
        value = headers.get(header.lower())
        if value is not None:
            kwargs[kwarg] = value
    if settings.subject_kwarg and subject is not None:
        kwargs[settings.subject_kwarg] = subject
    kwargs[ROOM_KWARG] = room
    return kwargs


def plan_publish(
    request: TaskRequest,
    default_room: str,
    headers: Mapping[str, str],
    settings: StirfriedSettings,
    subject: str | None = None,
) -> PublishPlan:
    """Build the publish plan for a request.

    As in Stirfried 0.7.0, chained tasks are applied in reverse order: with
    ``chain: [b, c]`` the run order is main, c, b. Each follower gets the result
    of the task before it as its first argument (Celery's ``link``) and reports
    to the same room.
    """
    room = resolve_room(request.room, default_room, settings)

    def planned(call: TaskCall) -> PlannedTask:
        return PlannedTask(
            name=call.name,
            args=call.args,
            kwargs=task_kwargs(call, room, headers, settings, subject),
            task_id=str(uuid.uuid4()),
        )

    return PublishPlan(
        main=planned(request.call),
        followers=tuple(planned(call) for call in reversed(request.chain)),
    )
