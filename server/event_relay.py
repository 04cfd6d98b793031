"""The relay of worker events from Redis to this gateway's Socket.IO clients and SSE streams.

Task events arrive on their task's own channel (:mod:`task_channels`, only for
tasks this gateway follows): :meth:`TaskEventRelay.relay_live`. Messages on
python-socketio's shared channel (emits of other gateways, custom rooms, and
events of workers still on the Stirfried 0.7.0 library) reach
:class:`RelayingRedisManager`, which hands each to :meth:`TaskEventRelay.relay`.
For an event of a task, the relay

1. parses the event (:func:`stirfried.protocol.decode_live_message`, or
   :func:`stirfried.protocol.decode_task_message` for python-socketio's message),
2. paces progress (:mod:`progress_pacer`, when ``stirfried_progress_rate`` is set),
3. feeds the task's SSE streams, and holds the event back from clients whose
   replay is still running or who unsubscribed (:mod:`subscriptions` registers them),
4. delivers it to the task's room and, on the gateway that scheduled the task,
   to the room it was scheduled for (:meth:`TaskEventRelay.route`): a client of
   this gateway directly, a custom room through python-socketio's manager (its
   members may be on any gateway).

Every other message is delivered untouched. All state is touched on the event
loop only, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import socketio
from engineio import exceptions as engineio_exceptions
from engineio import packet as engineio_packet
from socketio import packet as socketio_packet

from stirfried import protocol
from stirfried.protocol import TaskEvent
from stirfried.server import redis_clients
from stirfried.server.errors import SubscriptionConflict
from stirfried.server.progress_pacer import ProgressPacer
from stirfried.server.task_channels import TaskChannels

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Deliver = Callable[[Message], Awaitable[None]]
Send = Callable[[list[str]], Awaitable[None]]
"""Sends an event on, skipping the given sids."""

# Live events an SSE stream may have queued before it is cut off; its client
# then reconnects with Last-Event-ID and catches up from the log.
STREAM_BACKLOG = 10_000

# Unsubscribed tasks remembered per client (see TaskEventRelay.unsubscribed).
MAX_UNSUBSCRIBED_PER_CLIENT = 1000

StreamQueue = asyncio.Queue[TaskEvent | None]
"""An SSE stream's live events; None ends the stream."""


@dataclasses.dataclass(frozen=True)
class Route:
    """Where this gateway delivers a task's events besides its task room."""

    room: str
    local: bool
    """The room is a client of this gateway (its sid), not a custom room."""
    expiry: asyncio.TimerHandle


class TaskEventRelay:
    """Routes task events through progress pacing, held replays and SSE streams."""

    def __init__(self, progress_rate: float, on_event: Callable[[str], None]) -> None:
        self._pacer: ProgressPacer[tuple[str, TaskEvent, Send]] | None = (
            ProgressPacer(progress_rate, self._send) if progress_rate > 0 else None
        )
        self._on_event = on_event
        self._sio: socketio.AsyncServer | None = None
        self._channels: TaskChannels | None = None
        # task id -> the room this gateway scheduled it for
        self._routes: dict[str, Route] = {}
        self._routes_by_sid: dict[str, set[str]] = {}
        # task id -> sid -> live events held back while that client's replay runs
        self._held: dict[str, dict[str, list[TaskEvent]]] = {}
        # task id -> queues of the SSE streams following it
        self._streams: dict[str, set[StreamQueue]] = {}
        # task id -> sids that unsubscribed from it: the task's events also name the
        # scheduling client's own room, so leaving the task's room is not enough.
        self._unsubscribed: dict[str, set[str]] = {}
        # sids whose token expired on an open connection: they receive no task events
        self._expired: set[str] = set()
        # sid -> those task ids, oldest first -> when each unsubscribe came (see _order)
        self._unsubscribed_by_sid: dict[str, dict[str, int]] = {}
        # sid -> task id -> its subscribe_task requests under way
        self._subscribing: dict[str, dict[str, int]] = {}
        # Numbers subscribe and unsubscribe requests as they arrive
        self._order = itertools.count()

    def serve(self, sio: socketio.AsyncServer, channels: TaskChannels | None) -> None:
        """Deliver through ``sio``; routes follow their tasks on ``channels``."""
        self._sio = sio
        self._channels = channels

    async def relay(self, message: Message, deliver: Deliver) -> None:
        """Route one message of python-socketio's channel; ``deliver`` sends it to this process's clients."""
        self._on_event(str(message.get("event")))
        found = protocol.decode_task_message(message)
        if found is None:
            await deliver(message)
            return
        task_id, event = found

        async def send(skipped: list[str]) -> None:
            await deliver({**message, "skip_sid": skipped} if skipped else message)

        await self._offer(task_id, event, send)

    async def relay_live(self, task_id: str, data: bytes) -> None:
        """Route one message of a task's own channel."""
        live = protocol.decode_live_message(data)
        if live is None:
            logger.warning("dropped a malformed message on the channel of task %s", task_id)
            return
        event = live.event
        self._on_event(event.name)

        async def send(skipped: list[str]) -> None:
            await self._deliver_live(task_id, event, skipped)

        await self._offer(task_id, event, send)

    async def _offer(self, task_id: str, event: TaskEvent, send: Send) -> None:
        if self._pacer is None:
            await self._send((task_id, event, send))
        else:
            await self._pacer.offer(task_id, event.name, (task_id, event, send))

    async def _deliver_live(self, task_id: str, event: TaskEvent, skipped: list[str]) -> None:
        sio = self._sio
        if sio is None:
            return
        rooms = [protocol.task_room(task_id)]
        route = self._routes.get(task_id)
        if route is not None:
            if route.local:
                rooms.append(route.room)
            else:
                # A custom room's members may be on any gateway: python-socketio's channel.
                # Members of the task room here get it below, once.
                here = [sid for sid, _ in sio.manager.get_participants("/", rooms[0])]
                await sio.emit(event.name, event.payload, to=route.room, skip_sid=skipped + here)
        await sio.emit(event.name, event.payload, to=rooms, skip_sid=skipped or None, ignore_queue=True)
        if event.name in protocol.FINAL_EVENTS:
            # The task's last event: nothing more will come on its channel.
            self.unroute(task_id)
            if self._channels is not None:
                self._channels.ended(task_id)

    async def route(
        self, task_ids: list[str], room: str, sid: str | None, ttl: float
    ) -> list[asyncio.Future[None]]:
        """Deliver the events of ``task_ids`` to ``room`` too (``sid``: a client of this
        gateway) until their final event, ``sid`` leaves or ``ttl`` seconds pass.

        Returns once their channel subscriptions are sent, with those subscriptions: each
        is done once the task's events reach this gateway (see :meth:`TaskChannels.follow_soon`).
        """
        loop = asyncio.get_running_loop()
        subscriptions: list[asyncio.Future[None]] = []
        routed: list[str] = []
        try:
            for task_id in task_ids:
                self.unroute(task_id)
                expiry = loop.call_later(ttl, self.unroute, task_id)
                local = room == sid
                self._routes[task_id] = Route(room, local, expiry)
                if local:
                    self._routes_by_sid.setdefault(room, set()).add(task_id)
                routed.append(task_id)
                if self._channels is not None:
                    subscriptions.append(await self._channels.follow_soon(task_id))
        except BaseException:
            for task_id in routed:
                self.unroute(task_id)
            raise
        return subscriptions

    def unroute(self, task_id: str) -> None:
        """Stop delivering the task's events to the room it was scheduled for."""
        route = self._routes.pop(task_id, None)
        if route is None:
            return
        route.expiry.cancel()
        if route.local:
            tasks = self._routes_by_sid.get(route.room)
            if tasks is not None:
                tasks.discard(task_id)
                if not tasks:
                    del self._routes_by_sid[route.room]
        for sid in list(self._unsubscribed.get(task_id, ())):
            if not self._concerns(sid, task_id):
                self._forget_unsubscribe(sid, task_id)  # nothing left for its unsubscribe to stop
        if self._channels is not None:
            self._channels.unfollow(task_id)

    async def _send(self, routed: tuple[str, TaskEvent, Send]) -> None:
        task_id, event, send = routed
        for queue in self._streams.get(task_id, ()):
            if queue.full():
                cut_off(queue)
            else:
                queue.put_nowait(event)
        skipped = list(self._unsubscribed.get(task_id, ()))
        skipped.extend(self._expired)
        held = self._held.get(task_id)
        if held:
            for events_held in held.values():
                events_held.append(event)
            skipped.extend(held)
        await send(skipped)

    @contextlib.contextmanager
    def holding(self, task_id: str, sid: str) -> Iterator[list[TaskEvent]]:
        """Hold back the task's live events from ``sid``; yields the list they collect in.

        Raises SubscriptionConflict when a hold for the same client and task is in place.
        """
        held = self._held.setdefault(task_id, {})
        if sid in held:
            raise SubscriptionConflict("this client is already subscribing to the task")
        held[sid] = []
        try:
            yield held[sid]
        finally:
            del held[sid]
            if not held and self._held.get(task_id) is held:
                del self._held[task_id]

    @contextlib.contextmanager
    def stream(self, task_id: str) -> Iterator[StreamQueue]:
        """A queue that receives the task's live events while the block runs."""
        queue: StreamQueue = asyncio.Queue(maxsize=STREAM_BACKLOG)
        followers = self._streams.setdefault(task_id, set())
        followers.add(queue)
        try:
            yield queue
        finally:
            followers.discard(queue)
            if not followers and self._streams.get(task_id) is followers:
                del self._streams[task_id]

    @contextlib.contextmanager
    def subscribing(self, sid: str, task_id: str) -> Iterator[int]:
        """A ``subscribe_task`` of ``sid`` is under way; yields its place in the order of
        the client's requests, for :meth:`lost`."""
        arrival = next(self._order)
        tasks = self._subscribing.setdefault(sid, {})
        tasks[task_id] = tasks.get(task_id, 0) + 1
        try:
            yield arrival
        finally:
            if tasks[task_id] > 1:
                tasks[task_id] -= 1
            else:
                del tasks[task_id]
                if not tasks and self._subscribing.get(sid) is tasks:
                    del self._subscribing[sid]
                if not self._concerns(sid, task_id):
                    self._forget_unsubscribe(sid, task_id)

    def lost(self, sid: str, task_id: str, arrival: int) -> bool:
        """Whether an ``unsubscribe_task`` that came after the subscribe at ``arrival``
        stands (requests win in the order they came); if none did, the subscribe wins and
        an earlier unsubscribe no longer counts."""
        unsubscribed = self._unsubscribed_by_sid.get(sid, {}).get(task_id)
        if unsubscribed is not None and unsubscribed > arrival:
            return True
        self._forget_unsubscribe(sid, task_id)
        return False

    def _concerns(self, sid: str, task_id: str) -> bool:
        """Whether an unsubscribe of ``sid`` from the task has something to stop: a task this
        gateway delivers to a room (the client's own, or a custom room it may be in), or a
        subscribe of it under way."""
        return task_id in self._routes or task_id in self._subscribing.get(sid, {})

    def unsubscribed(self, sid: str, task_id: str) -> None:
        """Keep the task's events from ``sid``, also those addressed to its own room.

        Remembered only while there is something to stop (see :meth:`_concerns`; routes
        are bounded by the tasks scheduled here): ids are the client's to invent, memory is
        not; and at most MAX_UNSUBSCRIBED_PER_CLIENT per client, the oldest forgotten first.
        """
        if not self._concerns(sid, task_id):
            return
        tasks = self._unsubscribed_by_sid.setdefault(sid, {})
        tasks.pop(task_id, None)
        tasks[task_id] = next(self._order)
        self._unsubscribed.setdefault(task_id, set()).add(sid)
        while len(tasks) > MAX_UNSUBSCRIBED_PER_CLIENT:
            oldest = next(iter(tasks))
            del tasks[oldest]
            self._discard_unsubscribed(sid, oldest)

    def _forget_unsubscribe(self, sid: str, task_id: str) -> None:
        """Undo :meth:`unsubscribed`."""
        tasks = self._unsubscribed_by_sid.get(sid)
        if tasks is not None and task_id in tasks:
            del tasks[task_id]
            if not tasks:
                del self._unsubscribed_by_sid[sid]
            self._discard_unsubscribed(sid, task_id)

    def expired(self, sid: str) -> None:
        """Keep every task event from ``sid`` (its token expired)."""
        self._expired.add(sid)

    def forget(self, sid: str) -> None:
        """Drop what is kept for a client that disconnected."""
        self._expired.discard(sid)
        for task_id in self._unsubscribed_by_sid.pop(sid, ()):
            self._discard_unsubscribed(sid, task_id)
        for task_id in list(self._routes_by_sid.get(sid, ())):
            self.unroute(task_id)

    def _discard_unsubscribed(self, sid: str, task_id: str) -> None:
        sids = self._unsubscribed.get(task_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._unsubscribed[task_id]

    def close_streams(self) -> None:
        """End every SSE stream (at shutdown; their clients resume elsewhere)."""
        for followers in self._streams.values():
            for queue in followers:
                cut_off(queue)

    def close(self) -> None:
        """Cancel pending progress timers and routes."""
        if self._pacer is not None:
            self._pacer.close()
        for task_id in list(self._routes):
            self.unroute(task_id)


def cut_off(queue: StreamQueue) -> None:
    """End a stream now: drop what it has queued, then its end marker."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


class RelayingRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, handing each emit message to the relay first.

    Relies on python-socketio's internals, pinned by
    ``tests/unit/test_socketio_contract.py``: ``_handle_emit`` (called for each
    emit message received from Redis), ``initialize()`` (starts the listener) and,
    for its local emits, the manager's ``rooms``, ``get_participants`` and the
    server's ``packet_class`` and ``eio``.
    """

    def __init__(self, url: str, relay: TaskEventRelay, timeout: float) -> None:
        # No socket timeout on the subscriber: it waits for messages as long as it takes.
        options = {**redis_clients.client_options(timeout), "socket_timeout": None}
        super().__init__(url, redis_options=options)
        self._relay = relay

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """python-socketio's emit, except that an emit to this gateway's clients only
        (``ignore_queue``, without a callback: every relayed task event) is handed to
        their Engine.IO sockets right here.

        python-socketio's own local emit starts a task per recipient and waits for
        them all: an extra event-loop round, a task and a wait for every event on its
        way to a client (one gateway spends about 0.6x the CPU per event without
        them: docs/scaling.md). Handing a packet to a socket only queues it
        (Engine.IO's send queue is unbounded), so doing it in place blocks nothing.
        """
        if not kwargs.get("ignore_queue") or callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs
            )
            return
        await self._emit_here(event, data, namespace or "/", to or room, skip_sid)

    async def _emit_here(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        """What python-socketio's ``AsyncManager.emit`` does without a callback, in place."""
        if namespace not in self.rooms:
            return
        arguments = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            socketio_packet.EVENT, namespace=namespace, data=[event, *arguments]
        ).encode()
        packets = [
            engineio_packet.Packet(engineio_packet.MESSAGE, part)
            for part in (encoded if isinstance(encoded, list) else [encoded])
        ]
        engine = self.server.eio
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skipped:
                continue
            try:
                for part in packets:
                    await engine.send_packet(eio_sid, part)
            except engineio_exceptions.SocketIsClosedError:
                continue  # it disconnected meanwhile; the others still get theirs

    async def _handle_emit(self, message: Message) -> None:
        await self._relay.relay(message, self._deliver)

    async def _deliver(self, message: Message) -> None:
        await super()._handle_emit(message)

    async def listen_now(self, patience: float) -> None:
        """Subscribe to the Redis channel before the first client can connect.

        python-socketio starts its pub/sub listener on the first connection; a
        task that finished quickly could then publish its first events before
        the subscription exists, and they would be lost. Returns once subscribed
        (or after ``patience`` seconds; the listener keeps retrying).
        """
        if not self.server.manager_initialized:
            self.server.manager_initialized = True
            self.initialize()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while not (self.pubsub is not None and self.pubsub.subscribed):
            if loop.time() > deadline:
                logger.warning("not yet subscribed to Redis events; the relay keeps retrying")
                break
            await asyncio.sleep(0.01)
