"""The Socket.IO API: ``send_task``, ``revoke_task`` and ``task_info``.

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
from stirfried.server.celery_facade import (
    CeleryFacade,
    CeleryUnavailable,
    ResultBackendMissing,
)
from stirfried.server.scheduler import TaskScheduler
from stirfried.server.scheduling import mapped_headers
from stirfried.server.task_request import RequestRejected, parse_task_id
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

Reply = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ClientContext:
    """What the gateway remembers about a connected client (its Socket.IO session)."""

    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Connect-time header values that ``stirfried_header_task_map`` uses."""


class SocketIOApi:
    """The handlers, bound to one gateway's scheduler, Celery facade and settings."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        scheduler: TaskScheduler,
        celery: CeleryFacade,
        settings: StirfriedSettings,
    ) -> None:
        self._sio = sio
        self._scheduler = scheduler
        self._celery = celery
        self._settings = settings

    def register(self) -> None:
        """Attach the handlers the feature flags leave switched on."""
        self._sio.on("connect", self.connect)
        self._sio.on("send_task", self.send_task)
        if self._settings.enable_revoke_task:
            self._sio.on("revoke_task", self.revoke_task)
        if self._settings.enable_task_info:
            self._sio.on("task_info", self.task_info)
        self._sio.on("*", self.unknown_event)

    async def connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        request = environ.get("aiohttp.request")
        headers = mapped_headers(request.headers, self._settings) if request is not None else {}
        await self._sio.save_session(sid, ClientContext(headers=headers))

    async def send_task(self, sid: str, *args: Any) -> Reply:
        """Schedule a task; events go to this client's room unless the request says otherwise."""
        return await self._answer(sid, "send_task", self._send_task, args)

    async def revoke_task(self, sid: str, *args: Any) -> Reply:
        """Revoke a task by id; succeeds for unknown ids too."""
        return await self._answer(sid, "revoke_task", self._revoke_task, args)

    async def task_info(self, sid: str, *args: Any) -> Reply:
        """``{id, state, result}`` of a task, from the result backend."""
        return await self._answer(sid, "task_info", self._task_info, args)

    async def unknown_event(self, event: str, sid: str, *args: Any) -> Reply:
        return replies.failed(f"unknown event {event!r}")

    async def _send_task(self, sid: str, data: Any) -> Reply:
        context = await self._context(sid)
        task_id = await self._scheduler.schedule(
            data, default_room=sid, headers=context.headers, api="socketio", client=sid
        )
        return replies.succeeded(task_id)

    async def _revoke_task(self, sid: str, data: Any) -> Reply:
        task_id = parse_task_id(data)
        await self._celery.revoke(task_id)
        return replies.succeeded(task_id)

    async def _task_info(self, sid: str, data: Any) -> Reply:
        state = await self._celery.task_state(parse_task_id(data))
        return replies.task_info(state, self._settings.error_info)

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
