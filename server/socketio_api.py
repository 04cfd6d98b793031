"""The Socket.IO API: ``send_task``, ``revoke_task``, ``task_info``, ``subscribe_task``, ``unsubscribe_task``.

Handlers take ``*args`` because a client may emit any number of arguments;
whatever arrives, the client gets a ``{"status": "failed", "data": ...}`` reply
instead of an exception inside the server.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import socketio

from stirfried.server import replies
from stirfried.server.access import TaskAccess
from stirfried.server.auth import ANONYMOUS, Authenticator, Principal, bearer_token
from stirfried.server.celery_facade import (
    CeleryFacade,
    CeleryUnavailable,
    ResultBackendMissing,
)
from stirfried.server.limits import ConnectionCounter, check_size, request_address
from stirfried.server.scheduler import TaskScheduler
from stirfried.server.scheduling import mapped_headers
from stirfried.server.subscriptions import TaskSubscriptions
from stirfried.server.task_request import (
    RequestRejected,
    parse_subscription,
    parse_task_id,
    parse_task_reference,
)
from stirfried.server.tokens import SubscriptionTokens
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

Reply = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ClientContext:
    """What the gateway remembers about a connected client (its Socket.IO session)."""

    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Connect-time header values that ``stirfried_header_task_map`` uses."""
    principal: Principal = ANONYMOUS
    """Who connected: the claims of the token in the ``auth`` payload (or Authorization header)."""
    address: str | None = None
    """The peer address, counted against ``stirfried_max_connections_per_ip``."""


class SocketIOApi:
    """The handlers, bound to one gateway's scheduler, Celery facade and settings."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        scheduler: TaskScheduler,
        celery: CeleryFacade,
        subscriptions: TaskSubscriptions,
        tokens: SubscriptionTokens,
        authenticator: Authenticator,
        access: TaskAccess,
        settings: StirfriedSettings,
    ) -> None:
        self._sio = sio
        self._scheduler = scheduler
        self._celery = celery
        self._subscriptions = subscriptions
        self._tokens = tokens
        self._authenticator = authenticator
        self._access = access
        self._settings = settings
        self._connections = ConnectionCounter(settings.max_connections_per_ip)

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
        self._sio.on("*", self.unknown_event)

    async def connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> Reply | None:
        """Authenticate and count the connection; a refusal reaches the client as ``connect_error``."""
        if self._emitted_by_client(sid):
            return replies.failed("'connect' is reserved")
        request = environ.get("aiohttp.request")
        request_headers: Mapping[str, str] = request.headers if request is not None else {}
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if token is None:
                token = bearer_token(request_headers.get("Authorization"))
            principal = self._authenticator.authenticate(token)
        except RequestRejected as error:
            raise socketio.exceptions.ConnectionRefusedError(error.message) from error
        address = request_address(request, self._settings.trusted_proxies) if request is not None else None
        if address is not None and not self._connections.open(address):
            raise socketio.exceptions.ConnectionRefusedError("too many connections from this address")
        context = ClientContext(
            headers=mapped_headers(request_headers, self._settings), principal=principal, address=address
        )
        await self._sio.save_session(sid, context)
        return None

    async def disconnect(self, sid: str, reason: Any = None) -> Reply | None:
        if self._emitted_by_client(sid):
            return replies.failed("'disconnect' is reserved")
        context = await self._context(sid)
        if context.address is not None:
            self._connections.close(context.address)
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

    async def unknown_event(self, event: str, sid: str, *args: Any) -> Reply:
        return replies.failed(f"unknown event {event!r}")

    async def _send_task(self, sid: str, data: Any) -> Reply:
        check_size(data, self._settings.max_request_bytes, "task object")
        context = await self._context(sid)
        task_id = await self._scheduler.schedule(
            data,
            default_room=sid,
            headers=context.headers,
            api="socketio",
            client=sid,
            principal=context.principal,
            # Anonymous clients count per address: a new connection must not mean a new bucket.
            rate_key=f"address:{context.address}" if context.address else sid,
        )
        return replies.scheduled(task_id, self._tokens.issue(task_id))

    async def _subscribe_task(self, sid: str, data: Any) -> Reply:
        request = parse_subscription(data)
        context = await self._context(sid)
        await self._access.check_follow(context.principal, request.task_id, request.token)
        await self._subscriptions.subscribe(sid, request.task_id, request.after)
        return replies.succeeded(request.task_id)

    async def _unsubscribe_task(self, sid: str, data: Any) -> Reply:
        task_id = parse_task_id(data)
        await self._subscriptions.unsubscribe(sid, task_id)
        return replies.succeeded(task_id)

    async def _revoke_task(self, sid: str, data: Any) -> Reply:
        task_id = await self._accessible_task(sid, data)
        await self._celery.revoke(task_id)
        return replies.succeeded(task_id)

    async def _task_info(self, sid: str, data: Any) -> Reply:
        state = await self._celery.task_state(await self._accessible_task(sid, data))
        return replies.task_info(state, self._settings.error_info)

    async def _accessible_task(self, sid: str, data: Any) -> str:
        """The task id of ``task_id`` or ``{task_id, token}``, if this client may act on it."""
        task_id, token = parse_task_reference(data)
        context = await self._context(sid)
        await self._access.check_task_access(context.principal, task_id, token)
        return task_id

    async def _context(self, sid: str) -> ClientContext:
        session = await self._sio.get_session(sid)
        return session if isinstance(session, ClientContext) else ClientContext()

    async def _answer(self, sid: str, event: str, handler: Any, args: tuple[Any, ...]) -> Reply:
        if len(args) != 1:
            return replies.failed(f"{event} takes exactly one argument, got {len(args)}")
        try:
            reply: Reply = await handler(sid, args[0])
            return reply
        except (RequestRejected, CeleryUnavailable) as error:
            return replies.failed(error.message)
        except ResultBackendMissing as error:
            return replies.failed(str(error))
        except Exception:
            logger.exception("unexpected error handling %s from %s", event, sid)
            return replies.failed("internal server error")
