"""Following a task: replay its logged events, then live ones, with no gap and no duplicate.

A follower is a Socket.IO client (``subscribe_task``) or an SSE stream. Both
start the same way:

1. start receiving live events of the task, but hold them back: the hold is in
   place, and Redis has confirmed this gateway's subscription to the task's
   channel (:mod:`task_channels`), before the log is read;
2. read the task's log for every event after ``after`` and deliver those;
3. deliver the held-back live events whose ``event_id`` is above the last one
   delivered, then let live events through directly.

Any event published after step 1 is held back; any event published before it
is in the log (the worker logs and publishes in one Redis script). So the seam
has no gap, and the ``event_id`` filter removes events that are in both.
Everything runs on the gateway's event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable

import redis
import socketio
from celery import states

from stirfried import protocol
from stirfried.protocol import TaskEvent
from stirfried.server.celery_facade import CeleryFacade, PublishGate, PublishPlan, TaskState
from stirfried.server.errors import CeleryUnavailable, ResultBackendMissing
from stirfried.server.event_log import EventLog, LogRead
from stirfried.server.event_relay import TaskEventRelay
from stirfried.server.task_channels import TaskChannels
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

# A task that finished this recently may still be writing its final events to
# the log (Celery stores the result before it calls on_success/on_failure), so
# a missing log means "not yet", not "expired": wait this long before
# rebuilding the final events from the result backend.
SYNTHESIS_GRACE = 2.0

Charge = Callable[[int], None]
"""Charges the follower's client for a replay of that many events (``limits.replay_charge``)."""


class Position:
    """Where a follower is in a task's events: the last ``event_id`` it got, in which epoch."""

    def __init__(self, after: int, epoch: str | None) -> None:
        self.event_id = after
        self.epoch = epoch

    def is_new(self, event: TaskEvent) -> bool:
        """Whether the follower lacks ``event``: a later id, or the first of a new log."""
        epoch = event.payload.get(protocol.EPOCH)
        if isinstance(epoch, str) and self.epoch is not None and epoch != self.epoch:
            return True
        return event.event_id > self.event_id

    def passed(self, event: TaskEvent) -> None:
        self.event_id = event.event_id
        epoch = event.payload.get(protocol.EPOCH)
        if isinstance(epoch, str):
            self.epoch = epoch


def open_when_subscribed(gate: PublishGate, task_id: str, subscriptions: list[asyncio.Future[None]]) -> None:
    """Open ``gate`` once every one of the task's channel subscriptions has settled.

    The publish thread waits for the gate right before it sends the task, so the
    subscription's round trip to Redis overlaps the thread's start instead of preceding
    it, and the seam stays exact: the subscription is confirmed before the task exists.
    A failed subscription opens it too: scheduling does not depend on the event Redis
    (the task runs, its events stay in the log, which ``subscribe_task`` replays once
    Redis answers again).
    """
    pending = len(subscriptions)

    def settled(subscription: asyncio.Future[None]) -> None:
        nonlocal pending
        error = None if subscription.cancelled() else subscription.exception()
        if isinstance(error, (redis.RedisError, OSError, TimeoutError)):
            logger.warning("publishing task %s without its live events: %s", task_id, error)
        elif error is not None:
            logger.error("publishing task %s without its live events", task_id, exc_info=error)
        pending -= 1
        if pending == 0:
            gate.open()

    if not subscriptions:
        gate.open()
    for subscription in subscriptions:
        if subscription.done():
            settled(subscription)  # at once: a reserved channel's (TaskChannels.task_ids)
        else:
            subscription.add_done_callback(settled)


class TaskSubscriptions:
    """The followers of tasks on this gateway process: Socket.IO clients and SSE streams."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        relay: TaskEventRelay,
        log: EventLog | None,
        celery: CeleryFacade,
        settings: StirfriedSettings,
        channels: TaskChannels | None = None,
    ) -> None:
        self._sio = sio
        self._relay = relay
        self._channels = channels
        # sid -> tasks it follows through subscribe_task (each holds one channel follow)
        self._following: dict[str, set[str]] = {}
        self._log = log
        self._celery = celery
        self._settings = settings

    def subscribing(self, sid: str, task_id: str) -> contextlib.AbstractContextManager[int]:
        """Enter as a ``subscribe_task`` arrives, before anything is awaited, and leave when
        it is answered; it yields the request's place in the order, for :meth:`subscribe`:
        an ``unsubscribe_task`` that came later wins, one that came earlier no longer counts."""
        return self._relay.subscribing(sid, task_id)

    def task_ids(self, count: int, room: str) -> list[str] | None:
        """Ids for the ``count`` tasks of a request whose events go to ``room``: ids whose
        channels this gateway subscribed to beforehand where it can (None: any new ids)."""
        if room == self._settings.sentinel_room or self._channels is None:
            return None
        return self._channels.task_ids(count)

    async def before_publish(self, plan: PublishPlan, room: str, sid: str | None, gate: PublishGate) -> None:
        """Route the planned tasks' events to ``room`` (``sid``: the scheduling client of this
        gateway); return once the subscriptions are sent. ``gate`` (which the publish waits
        for) opens once their events reach this gateway: so before the tasks exist."""
        if room == self._settings.sentinel_room:
            gate.open()
            return
        task_ids = [plan.main.task_id, *(task.task_id for task in plan.followers)]
        subscriptions = await self._relay.route(task_ids, room, sid, ttl=self._settings.event_log_ttl)
        open_when_subscribed(gate, plan.main.task_id, subscriptions)

    def publish_failed(self, plan: PublishPlan) -> None:
        """Undo :meth:`before_publish`."""
        for task in (plan.main, *plan.followers):
            self._relay.unroute(task.task_id)

    async def _follow(self, sid: str, task_id: str) -> bool:
        """Follow the task's channel for ``sid``; whether this call added the follow."""
        following = self._following.setdefault(sid, set())
        if task_id in following or self._channels is None:
            return False
        following.add(task_id)
        try:
            await self._channels.follow(task_id)
        except BaseException:
            self._unfollow(sid, task_id)
            raise
        return True

    def _unfollow(self, sid: str, task_id: str) -> None:
        following = self._following.get(sid)
        if following is None or task_id not in following:
            return
        following.discard(task_id)
        if not following:
            del self._following[sid]
        if self._channels is not None:
            self._channels.unfollow(task_id)

    async def subscribe(
        self, sid: str, task_id: str, arrival: int, after: int, epoch: str | None, charge: Charge
    ) -> int:
        """Join ``sid`` to the task's room and replay what it missed; return events replayed.

        ``after`` counts in ``epoch``: if the task's log has another epoch now, it is
        a new log, and everything in it is replayed; ``charge`` is told its length once it
        is read, and may refuse to send it (RateLimited). A task that ended in the replay
        needs no channel: it is left at once. ``arrival``: what :meth:`subscribing`,
        entered as the request came, gave."""
        with self._relay.holding(task_id, sid) as held:
            room = protocol.task_room(task_id)
            # Else subscribed already: a resume (the room's members, not the sid's rooms: those
            # python-socketio finds by walking every room).
            joined = all(member != sid for member, _ in self._sio.manager.get_participants("/", room))
            await self._sio.enter_room(sid, room)
            followed = False
            try:
                followed = await self._follow(sid, task_id)
                history, position = await self._history(task_id, after, epoch)
                charge(len(history))  # the log is read: charged, even if not sent
            except Exception:
                # Undo only this call's part: a refused resume keeps the subscription it had.
                if joined:
                    await self._sio.leave_room(sid, room)
                if followed:
                    self._unfollow(sid, task_id)
                raise
            if self._relay.lost(sid, task_id, arrival):
                # An unsubscribe_task that came in meanwhile wins.
                await self._sio.leave_room(sid, room)
                self._unfollow(sid, task_id)
                return 0
            ended = False
            for event in history:
                await self._send(sid, event)
                position.passed(event)
                ended = ended or event.name in protocol.FINAL_EVENTS
            while held:
                event = held.pop(0)
                if position.is_new(event):
                    await self._send(sid, event)
                    position.passed(event)
                ended = ended or event.name in protocol.FINAL_EVENTS
            if ended:
                self._unfollow(sid, task_id)  # nothing more will come on its channel
            return len(history)

    async def unsubscribe(self, sid: str, task_id: str) -> None:
        """Stop the task's events to ``sid``, also those addressed to its own room."""
        self._relay.unsubscribed(sid, task_id)  # first: a subscribe still under way sees it
        await self._sio.leave_room(sid, protocol.task_room(task_id))
        self._unfollow(sid, task_id)

    def expired(self, sid: str) -> None:
        """The client's token expired: none of its tasks' events reach it any more."""
        self._relay.expired(sid)

    def forget(self, sid: str) -> None:
        """Drop what is kept for a client that disconnected."""
        self._relay.forget(sid)
        for task_id in list(self._following.get(sid, ())):
            self._unfollow(sid, task_id)

    async def stream(
        self, task_id: str, after: int, idle: float, epoch: str | None, charge: Charge
    ) -> AsyncGenerator[TaskEvent | None, None]:
        """The task's events after ``after``: replayed, then live; None once the stream
        follows the task with nothing to replay, and after ``idle`` quiet seconds.

        ``charge`` is told the replay's length once it is read, and may refuse it. Ends after the task's
        final event (also one the reader had already), at shutdown, or when the reader
        fell too far behind.
        """
        with self._relay.stream(task_id) as queue:
            try:
                if self._channels is not None:
                    await self._channels.follow(task_id)
                history, position = await self._history(task_id, after, epoch)
                if not history and after and self._log is not None and await self._ended_by(task_id, after):
                    return  # resumed at its final event (what EventSource does by itself)
                charge(len(history))
                if not history:
                    yield None  # following: the reader learns the stream is live
                for event in history:
                    yield event
                    position.passed(event)
                    if event.name in protocol.FINAL_EVENTS:
                        return
                while True:
                    try:
                        live = await asyncio.wait_for(queue.get(), idle)
                    except TimeoutError:
                        yield None
                        continue
                    if live is None:
                        return
                    if position.is_new(live):
                        yield live
                        position.passed(live)
                    if live.name in protocol.FINAL_EVENTS:
                        return  # the reader has it (from ``after``) or just got it
            finally:
                if self._channels is not None:
                    self._channels.unfollow(task_id)

    async def _ended_by(self, task_id: str, after: int) -> bool:
        """Whether the task's logged final event is at or before ``after``."""
        assert self._log is not None
        try:
            last = await self._log.last_event(task_id)
        except (redis.RedisError, OSError) as error:
            raise CeleryUnavailable(f"cannot read the task's event log from Redis: {error}") from error
        return last is not None and last.event_id <= after and last.name in protocol.FINAL_EVENTS

    async def _send(self, sid: str, event: TaskEvent) -> None:
        # Only this process holds the client: no need to go through Redis.
        await self._sio.emit(event.name, event.payload, to=sid, ignore_queue=True)

    async def _history(self, task_id: str, after: int, epoch: str | None) -> tuple[list[TaskEvent], Position]:
        """The events to replay, and the position they start after."""
        if self._log is None:
            return [], Position(after, epoch)
        read = await self._read_log(self._log, task_id, after)
        if after and epoch is not None and read.epoch is not None and read.epoch != epoch:
            # The log that numbered the client's events is gone: all of this one is new to it.
            after = 0
            read = await self._read_log(self._log, task_id, after)
        position = Position(after, read.epoch or epoch)
        return await self._history_or_final_state(task_id, after, read), position

    async def _history_or_final_state(self, task_id: str, after: int, read: LogRead) -> list[TaskEvent]:
        assert self._log is not None
        if read.events or read.exists:
            return read.events
        try:
            state = await self._celery.task_state(task_id)
        except (ResultBackendMissing, CeleryUnavailable):
            return []
        if state.state not in states.READY_STATES:
            return []
        if state.done_at is not None:
            # min(): a worker clock ahead of ours must not make us wait longer.
            wait = min(SYNTHESIS_GRACE, SYNTHESIS_GRACE - (time.time() - state.done_at))
            if wait > 0:
                await asyncio.sleep(wait)
                read = await self._read_log(self._log, task_id, after)
                if read.events or read.exists:
                    return read.events
        return self._synthesized(state, after)

    @staticmethod
    async def _read_log(log: EventLog, task_id: str, after: int) -> LogRead:
        try:
            return await log.read_after(task_id, after)
        except (redis.RedisError, OSError) as error:
            raise CeleryUnavailable(f"cannot read the task's event log from Redis: {error}") from error

    def _synthesized(self, state: TaskState, after: int) -> list[TaskEvent]:
        """The final events of a task whose log has expired, rebuilt from its result."""
        task_id, name = state.task_id, state.name
        if state.state == states.SUCCESS:
            built = [
                (protocol.ON_SUCCESS, protocol.success(task_id, name, state.result)),
                (protocol.ON_RETURN, protocol.returned(task_id, name, state.state, state.result)),
            ]
        elif state.state == states.FAILURE:
            error = protocol.describe_error(state.result) if self._settings.error_info else None
            built = [
                (protocol.ON_FAILURE, protocol.problem(task_id, name, None)),
                (protocol.ON_RETURN, protocol.returned(task_id, name, state.state, error)),
            ]
        elif state.state == states.REVOKED:
            built = [(protocol.ON_REVOKED, protocol.lifecycle(task_id, name))]
        else:
            return []
        now = time.time()
        return [
            TaskEvent(
                after + number,
                event,
                {protocol.EVENT_ID: after + number, protocol.TIMESTAMP: now, "synthesized": True, **payload},
            )
            for number, (event, payload) in enumerate(built, start=1)
        ]
