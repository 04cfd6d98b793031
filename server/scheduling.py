"""Scheduling a task, the same way for the HTTP and the Socket.IO API.

:class:`TaskScheduler` walks a task object down to the broker: parse it
(:mod:`task_request`), check what the gateway and the caller's token allow,
spend the caller's rate budget (:mod:`limits`), plan the Celery messages
(:func:`plan_publish`: where the events go, which keyword arguments the
gateway injects, the order of a chain), claim its idempotency key
(:mod:`idempotency`), record it (:mod:`task_records`) and publish it
(:mod:`celery_facade`). A task no live worker announces (:mod:`task_catalog`) is
refused before any of that.
The planning functions are pure, so each rule is unit-testable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from stirfried import protocol
from stirfried.server.caller import Caller, Principal
from stirfried.server.celery_facade import CeleryFacade, PlannedTask, PublishGate, PublishPlan
from stirfried.server.errors import (
    CeleryUnavailable,
    InvalidRequest,
    RateLimited,
    Refusal,
    TaskNotAllowed,
    TaskNotServed,
)
from stirfried.server.idempotency import Claim, IdempotencyKeys, fingerprint
from stirfried.server.limits import TASK_COST, RateLimiter
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.task_catalog import TaskCatalog
from stirfried.server.task_records import TaskRecords
from stirfried.server.task_request import (
    TaskCall,
    TaskRequest,
    check_shape,
    parse_idempotency_key,
    parse_task_request,
)
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

INVALID_TASK_NAME = "(invalid)"
CELERY_BUILT_IN_PREFIX = "celery."


class EventRoutes(Protocol):
    """Where a planned task's events go on this gateway (``subscriptions.TaskSubscriptions``)."""

    async def before_publish(
        self, plan: PublishPlan, room: str, sid: str | None, gate: PublishGate
    ) -> None: ...

    def publish_failed(self, plan: PublishPlan) -> None: ...

    def task_ids(self, count: int, room: str) -> list[str] | None: ...


@dataclasses.dataclass(frozen=True)
class Scheduled:
    """A scheduled task's id; ``replayed`` when an idempotency key returned an earlier one."""

    task_id: str
    replayed: bool = False


class TaskScheduler:
    """Validate, plan and publish a task object; count and log the outcome."""

    def __init__(
        self,
        celery: CeleryFacade,
        settings: StirfriedSettings,
        metrics: GatewayMetrics,
        budget: RateLimiter,
        catalog: TaskCatalog,
        records: TaskRecords,
        idempotency: IdempotencyKeys,
        routes: EventRoutes | None = None,
    ) -> None:
        self._routes = routes
        self._celery = celery
        self._settings = settings
        self._metrics = metrics
        self._budget = budget
        self._catalog = catalog
        self._records = records
        self._idempotency = idempotency
        self._settling: set[asyncio.Task[None]] = set()

    async def schedule(
        self,
        data: Any,
        caller: Caller,
        default_room: str,
        api: str,
        sid: str | None = None,
        idempotency_key: str | None = None,
    ) -> Scheduled:
        """Publish the task object ``data`` for ``caller``; return the task id.

        Events go to ``default_room`` unless the request names another room the
        settings allow; ``sid`` is the scheduling Socket.IO client, whose gateway
        receives the task's events from before it is published. ``idempotency_key``
        (the HTTP header) or the body's ``idempotency_key`` makes a repeat return the
        first task. Raises a Refusal: bad input, a forbidden task or option, a task no
        worker serves, too many tasks, an expired token, or CeleryUnavailable.
        """
        name = INVALID_TASK_NAME
        principal = caller.principal
        try:
            principal.check_current()
            task = parse_task_request(data)
            name = task.call.name
            key = _idempotency_key(task, idempotency_key)
            if len(task.chain) > self._settings.max_chain:
                raise InvalidRequest(
                    f"'chain' has {len(task.chain)} tasks; at most {self._settings.max_chain} are allowed"
                )
            for call in task.calls():
                check_shape(call.args, self._settings.max_nesting, "args")
                check_shape(call.kwargs, self._settings.max_nesting, "kwargs")
            check_allowed(task, self._settings.available_tasks, caller.principal)
            check_options(task, self._settings, caller.principal, time.time())
            self._budget.take(caller.rate_key, TASK_COST * len(task.calls()))
            await self._check_served(task)
            # Without a key nothing can stop the publish between here and the routes taking
            # over these ids (a key's claim could return an earlier task instead).
            task_ids = None
            if key is None and self._routes is not None:
                room = resolve_room(task.room, default_room, self._settings)
                task_ids = self._routes.task_ids(len(task.calls()), room)
            plan = plan_publish(
                task, default_room, caller.headers, self._settings, principal.subject, task_ids
            )
            claim = None
            if key is not None:
                claimed = await self._idempotency.claim(
                    caller.rate_key, key, fingerprint(data), plan.main.task_id
                )
                if isinstance(claimed, str):
                    logger.info("idempotent repeat of task %s id=%s client=%s", name, claimed, caller.label)
                    return Scheduled(claimed, replayed=True)
                claim = claimed
            await self._publish(plan, caller, sid, claim)
        except Refusal as refusal:
            self._count_rejected(name, api, _reason(refusal))
            raise
        self._metrics.tasks_scheduled.labels(self._metrics.task_name(name), api).inc()
        logger.info(
            "scheduled task %s id=%s api=%s client=%s subject=%s",
            name,
            plan.main.task_id,
            api,
            caller.label,
            principal.subject,
        )
        return Scheduled(plan.main.task_id)

    async def _publish(self, plan: PublishPlan, caller: Caller, sid: str | None, claim: Claim | None) -> None:
        settled = functools.partial(self._settle, claim) if claim is not None else None
        tasks = [(task.task_id, task.name) for task in (plan.main, *plan.followers)]
        room = plan.main.kwargs[protocol.ROOM_KWARG]
        if self._routes is None or room == self._settings.sentinel_room:
            # No events to route here: only the request waits, so the record overlaps the
            # publish (nobody can read or follow the task before its id is returned).
            recording = asyncio.ensure_future(
                self._records.record(tasks, caller.principal.tags, caller.owner_tags)
            )
            try:
                await self._celery.publish(plan, settled)  # awaited itself: it always reaches `settled`
            finally:
                await recording
            return
        # The publish starts first: its thread starts up while the events are routed (on
        # channels reserved beforehand, or subscribed now), and waits for their
        # subscriptions (the gate) right before it sends the task.
        gate = PublishGate()
        scheduled = time.time()  # the record's, from before the task can run and end
        publishing = asyncio.ensure_future(self._celery.publish(plan, settled, gate))
        try:
            await asyncio.sleep(0)  # lets it reach its thread
            await self._routes.before_publish(plan, room, sid, gate)
            await publishing
        except BaseException:
            gate.abort()
            publishing.cancel()
            self._routes.publish_failed(plan)
            raise
        # After the publish rather than beside it: its work on the event loop would hold
        # the interpreter while the publish thread needs it (the task's way to the worker
        # and so to its first event), and it overlaps the task's run instead.
        await self._records.record(tasks, caller.principal.tags, caller.owner_tags, scheduled)

    def _settle(self, claim: Claim, sent: bool) -> None:
        """The publish of an idempotent submit has its final outcome (maybe after the
        client was answered 503): record it, so a retry returns the task or publishes it."""
        settling = asyncio.get_running_loop().create_task(self._idempotency.settle(claim, sent))
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)

    async def _check_served(self, task: TaskRequest) -> None:
        """Refuse a task no live worker announces (chained tasks too), or one sent to a
        queue none of its workers consumes: the request's ``queue``, else (for the main
        task, which this gateway routes) where its ``task_routes`` or Celery's default
        queue send it."""
        if not self._settings.refuse_unserved_tasks:
            return
        for call in task.calls():
            if call.name.startswith(CELERY_BUILT_IN_PREFIX):
                continue  # every Celery worker runs them; check_allowed let through named ones only
            served = await self._catalog.served(call.name)
            if served is None:
                raise TaskNotServed(f"no live worker serves task '{call.name}'")
            queue = call.options.get("queue")
            if queue is not None and queue not in served.queues:
                raise TaskNotServed(f"no live worker serves task '{call.name}' on queue '{queue}'")
            if queue is not None or call is not task.call or not served.queues:
                continue  # chained tasks are routed by the worker that sends them on
            routed = self._celery.queue_of(call.name, call.args, call.kwargs)
            if routed is not None and routed not in served.queues:
                raise TaskNotServed(
                    f"no live worker serves task '{call.name}' on queue '{routed}', where this "
                    f"gateway sends it (its workers consume {', '.join(sorted(served.queues))}; "
                    "see task_routes)"
                )

    def _count_rejected(self, name: str, api: str, reason: str) -> None:
        self._metrics.tasks_rejected.labels(self._metrics.task_name(name), api, reason).inc()


def _idempotency_key(task: TaskRequest, header: str | None) -> str | None:
    """The submission's idempotency key: the header's or the body's (they must agree)."""
    header = parse_idempotency_key(header, "the Idempotency-Key header")
    if header is not None and task.idempotency_key is not None and header != task.idempotency_key:
        raise InvalidRequest("the Idempotency-Key header and the body's 'idempotency_key' differ")
    return header or task.idempotency_key


def _reason(refusal: Refusal) -> str:
    """The ``reason`` label of ``stirfried_tasks_rejected``."""
    if isinstance(refusal, RateLimited):
        return "rate_limited"
    if isinstance(refusal, TaskNotAllowed):
        return "forbidden"
    if isinstance(refusal, TaskNotServed):
        return "unserved"
    if isinstance(refusal, CeleryUnavailable):
        return "unavailable"
    return "invalid"


def check_options(task: TaskRequest, settings: StirfriedSettings, principal: Principal, now: float) -> None:
    """Raise TaskNotAllowed for an option the settings or the token do not allow, and
    InvalidRequest for one out of bounds (a delay beyond ``stirfried_max_task_delay``)."""
    limit = settings.max_task_delay
    for call in task.calls():
        for option, value in call.options.items():
            if option not in settings.task_options:
                raise TaskNotAllowed(
                    f"option '{option}' is not available on this gateway (stirfried_task_options)"
                )
            if not principal.may_set(option):
                raise TaskNotAllowed(f"the token does not allow option '{option}'")
            if option == "queue" and value not in settings.task_queues:
                raise TaskNotAllowed(f"queue '{value}' is not one of stirfried_task_queues")
            seconds = value.timestamp() - now if isinstance(value, datetime.datetime) else value
            if option in ("countdown", "eta", "expires") and seconds > limit:
                raise InvalidRequest(
                    f"'{option}' reaches more than {limit} seconds ahead (stirfried_max_task_delay)"
                )


def check_allowed(task: TaskRequest, available_tasks: tuple[str, ...], principal: Principal) -> None:
    """Raise TaskNotAllowed unless every task of the request is on the allowlist (when
    there is one) and allowed by the caller's token.

    Celery's built-in tasks (``celery.chord_unlock``, ``celery.backend_cleanup``, ...)
    run on every worker and take callbacks and options of their own, so a client
    could reach anything through them: they need naming in the allowlist, whatever
    an empty allowlist or a token's ``["*"]`` says.
    """
    for call in task.calls():
        if call.name.startswith(CELERY_BUILT_IN_PREFIX) and call.name not in available_tasks:
            raise TaskNotAllowed(
                f"task '{call.name}' is one of Celery's built-in tasks, which are not available"
            )
        if available_tasks and call.name not in available_tasks:
            raise TaskNotAllowed(f"task '{call.name}' is not available")
        if not principal.may_schedule(call.name):
            raise TaskNotAllowed(f"the token does not allow task '{call.name}'")


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


def protected_arguments(task_name: str, settings: StirfriedSettings) -> tuple[str, ...]:
    """The arguments of ``task_name`` that only the gateway sets: ``room``, its
    header-mapped arguments and the subject argument."""
    names = [protocol.ROOM_KWARG, *settings.header_task_map.get(task_name, {}).values()]
    if settings.subject_kwarg:
        names.append(settings.subject_kwarg)
    return tuple(dict.fromkeys(names))


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
    protected = protected_arguments(call.name, settings)
    kwargs = {key: value for key, value in call.kwargs.items() if key not in protected}
    for header, kwarg in mapping.items():
        value = headers.get(header.lower())
        if value is not None:
            kwargs[kwarg] = value
    if settings.subject_kwarg and subject is not None:
        kwargs[settings.subject_kwarg] = subject
    kwargs[protocol.ROOM_KWARG] = room
    return kwargs


def plan_publish(
    request: TaskRequest,
    default_room: str,
    headers: Mapping[str, str],
    settings: StirfriedSettings,
    subject: str | None = None,
    task_ids: list[str] | None = None,
) -> PublishPlan:
    """Build the publish plan for a request.

    As in Stirfried 0.7.0, chained tasks are applied in reverse order: with
    ``chain: [b, c]`` the run order is main, c, b. Each follower gets the result
    of the task before it as its first argument (Celery's ``link``) and reports
    to the same room. ``task_ids``: the ids to give the main task and its followers,
    in run order (new ones by default).
    """
    room = resolve_room(request.room, default_room, settings)
    ids = iter(task_ids or [str(uuid.uuid4()) for _ in range(1 + len(request.chain))])

    def planned(call: TaskCall) -> PlannedTask:
        return PlannedTask(
            name=call.name,
            args=call.args,
            kwargs=task_kwargs(call, room, headers, settings, subject),
            task_id=next(ids),
            # Clients could still fill them positionally; the worker refuses that.
            protected=protected_arguments(call.name, settings),
            options=call.options,
        )

    return PublishPlan(
        main=planned(request.call),
        followers=tuple(planned(call) for call in reversed(request.chain)),
    )
