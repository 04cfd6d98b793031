"""Following a task: replay its logged events, then live ones, with no gap and no duplicate.

A follower is a Socket.IO client (``subscribe_task``) or an SSE stream. Both
start the same way:

1. start receiving live events of the task, but hold them back;
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
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import redis
import socketio
from celery import states

from stirfried import events
from stirfried.server import replies
from stirfried.server.celery_facade import CeleryFacade, CeleryUnavailable, ResultBackendMissing, TaskState
from stirfried.server.event_log import EventLog, LogRead, TaskEvent
from stirfried.server.task_request import SubscriptionConflict
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

# A task that finished this recently may still be writing its final events to
# the log (Celery stores the result before it calls on_success/on_failure), so
# a missing log means "not yet", not "expired": wait this long before
# rebuilding the final events from the result backend.
SYNTHESIS_GRACE = 2.0

# Live events an SSE stream may have queued before it is cut off; its client
# then reconnects with Last-Event-ID and catches up from the log.
STREAM_BACKLOG = 10_000


class TaskSubscriptions:
    """The followers of tasks on this gateway process."""

    def __init__(
        self,
        sio: socketio.AsyncServer | None,
        log: EventLog | None,
        celery: CeleryFacade,
        settings: StirfriedSettings,
    ) -> None:
        self._sio = sio
        self._log = log
        self._celery = celery
        self._settings = settings
        # task id -> sid -> live events held back while that client's replay runs
        self._held: dict[str, dict[str, list[TaskEvent]]] = {}
        # task id -> queues of the SSE streams following it (None ends a stream)
        self._streams: dict[str, set[asyncio.Queue[TaskEvent | None]]] = {}
        # task id -> sids that unsubscribed from it: the task's events also name the
        # scheduling client's own room, so leaving the task's room is not enough.
        self._unsubscribed: dict[str, set[str]] = {}
        self._unsubscribed_by_sid: dict[str, set[str]] = {}

    def live(self, task_id: str, event: TaskEvent) -> list[str]:
        """Take a live event of ``task_id``; return the sids it must not be sent to (now).

        Called by the relay for every task event before it reaches the task's rooms.
        """
        for queue in self._streams.get(task_id, ()):
            if queue.full():
                _cut_off(queue)
            else:
                queue.put_nowait(event)
        skipped = list(self._unsubscribed.get(task_id, ()))
        held = self._held.get(task_id)
        if held:
            for events_held in held.values():
                events_held.append(event)
            skipped.extend(held)
        return skipped

    async def subscribe(self, sid: str, task_id: str, after: int) -> int:
        """Join ``sid`` to the task's room and replay what it missed; return events replayed."""
        assert self._sio is not None
        held = self._held.setdefault(task_id, {})
        if sid in held:
            raise SubscriptionConflict("this client is already subscribing to the task")
        held[sid] = []
        room = events.task_room(task_id)
        try:
            await self._sio.enter_room(sid, room)
            try:
                history = await self._history(task_id, after)
            except Exception:
                await self._sio.leave_room(sid, room)
                raise
            self._resubscribed(sid, task_id)
            delivered = after
            for event in history:
                await self._send(sid, event)
                delivered = event.event_id
            replayed = len(history)
            while held[sid]:
                event = held[sid].pop(0)
                if event.event_id > delivered:
                    await self._send(sid, event)
                    delivered = event.event_id
            return replayed
        finally:
            del held[sid]
            if not held and self._held.get(task_id) is held:
                del self._held[task_id]

    async def unsubscribe(self, sid: str, task_id: str) -> None:
        """Stop the task's events to ``sid``, also those addressed to its own room."""
        assert self._sio is not None
        await self._sio.leave_room(sid, events.task_room(task_id))
        self._unsubscribed.setdefault(task_id, set()).add(sid)
        self._unsubscribed_by_sid.setdefault(sid, set()).add(task_id)

    def forget(self, sid: str) -> None:
        """Drop what is kept for a client that disconnected."""
        for task_id in self._unsubscribed_by_sid.pop(sid, ()):
            self._discard_unsubscribed(sid, task_id)

    def _resubscribed(self, sid: str, task_id: str) -> None:
        tasks = self._unsubscribed_by_sid.get(sid)
        if tasks is not None and task_id in tasks:
            tasks.discard(task_id)
            if not tasks:
                del self._unsubscribed_by_sid[sid]
            self._discard_unsubscribed(sid, task_id)

    def _discard_unsubscribed(self, sid: str, task_id: str) -> None:
        sids = self._unsubscribed.get(task_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._unsubscribed[task_id]

    async def stream(self, task_id: str, after: int, idle: float) -> AsyncGenerator[TaskEvent | None, None]:
        """The task's events after ``after``: replayed, then live; None after ``idle`` quiet seconds.

        Ends after the task's final event, at shutdown, or when the reader fell
        too far behind.
        """
        queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue(maxsize=STREAM_BACKLOG)
        followers = self._streams.setdefault(task_id, set())
        followers.add(queue)
        try:
            delivered = after
            for event in await self._history(task_id, after):
                yield event
                delivered = event.event_id
                if event.name in events.FINAL_EVENTS:
                    return
            while True:
                try:
                    live = await asyncio.wait_for(queue.get(), idle)
                except TimeoutError:
                    yield None
                    continue
                if live is None:
                    return
                if live.event_id > delivered:
                    yield live
                    delivered = live.event_id
                    if live.name in events.FINAL_EVENTS:
                        return
        finally:
            followers.discard(queue)
            if not followers and self._streams.get(task_id) is followers:
                del self._streams[task_id]

    def close_streams(self) -> None:
        """End every SSE stream (at shutdown; their clients resume elsewhere)."""
        for followers in self._streams.values():
            for queue in followers:
                _cut_off(queue)

    async def close(self) -> None:
        """Close the event log's Redis connections."""
        if self._log is not None:
            await self._log.close()

    async def _send(self, sid: str, event: TaskEvent) -> None:
        assert self._sio is not None
        # Only this process holds the client: no need to go through Redis.
        await self._sio.emit(event.name, event.payload, to=sid, ignore_queue=True)

    async def _history(self, task_id: str, after: int) -> list[TaskEvent]:
        if self._log is None:
            return []
        read = await self._read_log(self._log, task_id, after)
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
                (events.ON_SUCCESS, events.success(task_id, name, state.result)),
                (events.ON_RETURN, events.returned(task_id, name, state.state, state.result)),
            ]
        elif state.state == states.FAILURE:
            error = replies.describe_error(state.result) if self._settings.error_info else None
            built = [
                (events.ON_FAILURE, events.problem(task_id, name, None)),
                (events.ON_RETURN, events.returned(task_id, name, state.state, error)),
            ]
        elif state.state == states.REVOKED:
            built = [(events.ON_REVOKED, events.lifecycle(task_id, name))]
        else:
            return []
        now = time.time()
        return [
            TaskEvent(
                after + number,
                event,
                {events.EVENT_ID: after + number, events.TIMESTAMP: now, "synthesized": True, **payload},
            )
            for number, (event, payload) in enumerate(built, start=1)
        ]


def _cut_off(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
