"""The Socket.IO API: ``send_task``, ``revoke_task``, ``task_info``, ``subscribe_task``,
``unsubscribe_task``, ``list_tasks`` and ``list_my_tasks``.

Handlers take ``*args`` because a client may emit any number of arguments;
whatever arrives, the client gets a ``{"status": "failed", "data": ...}`` reply
instead of an exception inside the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import socketio

from stirfried.server import replies
from stirfried.server.caller import ANONYMOUS, Caller, Callers
from stirfried.server.errors import InvalidRequest, Refusal, socketio_reply
from stirfried.server.limits import READ_COST, ConnectionCounter, RateLimiter, replay_charge
from stirfried.server.scheduling import TaskScheduler
from stirfried.server.session_guard import drop_transport
from stirfried.server.subscriptions import TaskSubscriptions
from stirfried.server.task_access import TaskAccess
from stirfried.server.task_operations import TaskOperations
from stirfried.server.task_request import (
    check_size,
    parse_page,
    parse_revoke,
    parse_subscription,
    parse_task_id,
    parse_task_reference,
)
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

Reply = dict[str, Any]
# A Caller is kept as each client's Socket.IO session.
UNKNOWN_CALLER = Caller(ANONYMOUS, "unknown", "unknown")


class SocketIOApi:
    """The handlers, bound to one gateway's scheduler, Celery facade and settings."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        scheduler: TaskScheduler,
        operations: TaskOperations,
        subscriptions: TaskSubscriptions,
        callers: Callers,
        access: TaskAccess,
        budget: RateLimiter,
        connections: ConnectionCounter,
        settings: StirfriedSettings,
    ) -> None:
        self._budget = budget
        self._sio = sio
        self._scheduler = scheduler
        self._operations = operations
        self._subscriptions = subscriptions
        self._callers = callers
        self._access = access
        self._settings = settings
        self._connections = connections
        # sid -> the timer that silences it when its token expires
        self._expiries: dict[str, asyncio.TimerHandle] = {}

    def register(self) -> None:
        """Attach the handlers the feature flags leave switched on."""
        self._sio.on("connect", self.connect)
        self._sio.on("disconnect", self.disconnect)
        self._sio.on("send_task", self.send_task)
        if self._settings.enable_revoke_task:
            self._sio.on("revoke_task", self.revoke_task)
        if self._settings.enable_task_info:
            self._sio.on("task_info", self.task_info)
        self._sio.on("subscribe_task", self.subscribe_task)
        self._sio.on("unsubscribe_task", self.unsubscribe_task)
        self._sio.on("list_tasks", self.list_tasks)
        self._sio.on("list_my_tasks", self.list_my_tasks)
        self._sio.on("*", self.unknown_event)

    async def connect(self, sid: str, environ: Any = None, auth: Any = None) -> Reply | None:
        """Authenticate and count the connection; a refusal reaches the client as ``connect_error``.

        (``environ`` has a default because a client may emit an event named
        ``connect`` with no arguments; it gets a failed reply.)
        """
        if self._emitted_by_client(sid) or not isinstance(environ, Mapping):
            return replies.failed("'connect' is reserved")
        try:
            caller = self._callers.of_connection(sid, environ.get("aiohttp.request"), auth)
        except Refusal as refusal:
            raise socketio.exceptions.ConnectionRefusedError(refusal.message) from refusal
        if not self._connections.open(caller.address):
            raise socketio.exceptions.ConnectionRefusedError("too many connections from this address")
        await self._sio.save_session(sid, caller)
        if caller.principal.expires is not None:
            # Expiry holds on an open connection too: no events after it.
            delay = max(0.0, caller.principal.expires - time.time())
            self._expiries[sid] = asyncio.get_running_loop().call_later(delay, self._expire, sid)
        return None

    def _expire(self, sid: str) -> None:
        """A client's token expired: no more events reach it, and its requests get "the token
        has expired" (clients with a fresh token reconnect and resubscribe)."""
        self._expiries.pop(sid, None)
        self._subscriptions.expired(sid)

    async def disconnect(self, sid: str, reason: Any = None) -> Reply | None:
        if self._emitted_by_client(sid):
            return replies.failed("'disconnect' is reserved")
        caller = await self._caller(sid)
        if caller is not UNKNOWN_CALLER:
            self._connections.close(caller.address)
        expiry = self._expiries.pop(sid, None)
        if expiry is not None:
            expiry.cancel()
        self._subscriptions.forget(sid)
        return None

    def _emitted_by_client(self, sid: str) -> bool:
        """Whether a ``connect``/``disconnect`` call is an event the client emitted by that name.

        python-socketio dispatches such events to the same handlers; the real ones
        run while the client is still connecting or already disconnecting. A client
        must not reset its own session or free its connection slot this way.
        """
        return bool(self._sio.manager.is_connected(sid, "/"))

    async def send_task(self, sid: str, *args: Any) -> Reply:
        """Schedule a task; events go to this client's room unless the request says otherwise."""
        return await self._answer(sid, "send_task", self._send_task, args)

    async def revoke_task(self, sid: str, *args: Any) -> Reply:
        """Revoke a task by id; succeeds for unknown ids too."""
        return await self._answer(sid, "revoke_task", self._revoke_task, args)

    async def task_info(self, sid: str, *args: Any) -> Reply:
        """``{id, state, result}`` of a task, from the result backend."""
        return await self._answer(sid, "task_info", self._task_info, args)

    async def subscribe_task(self, sid: str, *args: Any) -> Reply:
        """Follow a task: replay its events after ``after``, then live ones. Needs its token."""
        return await self._answer(sid, "subscribe_task", self._subscribe_task, args)

    async def unsubscribe_task(self, sid: str, *args: Any) -> Reply:
        """Stop following a task: none of its events reach this client any more."""
        return await self._answer(sid, "unsubscribe_task", self._unsubscribe_task, args)

    async def list_tasks(self, sid: str, *args: Any) -> Reply:
        """The tasks this client may schedule that live workers serve (the catalog)."""
        return await self._answer(sid, "list_tasks", self._list_tasks, args, optional=True)

    async def list_my_tasks(self, sid: str, *args: Any) -> Reply:
        """This client's recent tasks, newest first: ``{limit, cursor}`` or nothing."""
        return await self._answer(sid, "list_my_tasks", self._list_my_tasks, args, optional=True)

    async def unknown_event(self, *args: Any) -> Reply:
        """Any other event: ``(event, sid, *data)``, or ``(sid, *data)`` for an event named ``*``
        (python-socketio calls the catch-all handler directly for that name)."""
        event = args[0] if args else ""
        if self._sio.manager.is_connected(event, "/"):
            event = "*"
        return replies.failed(f"unknown event {event!r}")

    async def _send_task(self, sid: str, data: Any) -> Reply:
        check_size(data, self._settings.max_request_bytes, "task object")
        caller = await self._caller(sid)
        scheduled = await self._scheduler.schedule(data, caller, default_room=sid, api="socketio", sid=sid)
        task_id = scheduled.task_id
        reply = replies.scheduled(task_id, self._access.issue_token(task_id))
        if scheduled.replayed:
            # A retry (perhaps after a reconnect): this client follows the first task from its start.
            with self._subscriptions.subscribing(sid, task_id) as arrival:
                charge = replay_charge(self._budget, caller.rate_key)
                await self._subscriptions.subscribe(sid, task_id, arrival, 0, None, charge)
            reply["replayed"] = True
        return reply

    async def _subscribe_task(self, sid: str, data: Any) -> Reply:
        request = parse_subscription(data)
        task_id = request.task_id
        with self._subscriptions.subscribing(sid, task_id) as arrival:
            caller = await self._caller(sid)
            self._budget.take(caller.rate_key, READ_COST)
            await self._access.check_follow(caller.principal, task_id, request.token)
            charge = replay_charge(self._budget, caller.rate_key)
            await self._subscriptions.subscribe(sid, task_id, arrival, request.after, request.epoch, charge)
        return replies.succeeded(request.task_id)

    async def _unsubscribe_task(self, sid: str, data: Any) -> Reply:
        task_id = parse_task_id(data)
        await self._subscriptions.unsubscribe(sid, task_id)
        return replies.succeeded(task_id)

    async def _revoke_task(self, sid: str, data: Any) -> Reply:
        request = parse_revoke(data)
        await self._operations.revoke(await self._caller(sid), request)
        return replies.succeeded(request.task_id)

    async def _task_info(self, sid: str, data: Any) -> Reply:
        task_id, token = parse_task_reference(data)
        return await self._operations.info(await self._caller(sid), task_id, token)

    async def _list_tasks(self, sid: str, data: Any) -> Reply:
        if data is not None and data != {}:
            raise InvalidRequest("list_tasks takes no argument (or {})")
        return replies.succeeded(await self._operations.available(await self._caller(sid)))

    async def _list_my_tasks(self, sid: str, data: Any) -> Reply:
        return await self._operations.mine(await self._caller(sid), parse_page(data))

    async def _caller(self, sid: str) -> Caller:
        session = await self._sio.get_session(sid)
        return session if isinstance(session, Caller) else UNKNOWN_CALLER

    async def _answer(
        self,
        sid: str,
        event: str,
        handler: Callable[[str, Any], Awaitable[Reply]],
        args: tuple[Any, ...],
        optional: bool = False,
    ) -> Reply:
        if optional and not args:
            args = (None,)
        if len(args) != 1:
            wanted = "at most one argument" if optional else "exactly one argument"
            return replies.failed(f"{event} takes {wanted}, got {len(args)}")
        try:
            return await handler(sid, args[0])
        except Refusal as refusal:
            return socketio_reply(refusal)
        except Exception:
            logger.exception("unexpected error handling %s from %s", event, sid)
            return replies.failed("internal server error")


async def drop_connections(sio: socketio.AsyncServer) -> None:
    """Drop every client's connection so that it reconnects, e.g. to another gateway.

    An open websocket would otherwise hold the shutdown until aiohttp's timeout.
    The transport is closed without Engine.IO's close packet: python-socketio
    clients take that packet as a deliberate disconnect and stay away, while
    a lost transport makes every standard client reconnect.
    """
    engine = sio.eio
    for socket in list(engine.sockets.values()):
        await drop_transport(engine, socket)
