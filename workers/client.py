"""A Python client for the Stirfried gateway: schedule by name, await the result.

asyncio first::

    async with StirfriedClient("http://127.0.0.1:8000") as client:
        total = await client.run("add", 2, 3)

and a thin blocking wrapper for scripts::

    with SyncStirfriedClient("http://127.0.0.1:8000") as client:
        print(client.run("count_to", 5, on_progress=print))

A task's events survive a lost connection: after python-socketio reconnects,
the client resubscribes to every task it is waiting for, from the last
``event_id`` it saw, and the gateway replays what it missed. ``follow`` waits
for a task scheduled elsewhere (another process, ``curl``), given its token.
``tasks`` lists what one can schedule (the gateway's catalog), ``my_tasks``
what one scheduled (by token subject; on an anonymous gateway by ``session``).

Needs the ``client`` extra (``pip install "/path/to/stirfried-checkout[client]"``): python-socketio's
asyncio client runs on aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Unpack

import socketio

from stirfried import protocol
from stirfried.client_errors import RequestFailed, StirfriedError, TaskFailed, TaskRevoked, TaskTimeout
from stirfried.client_types import (
    MyTask,
    Progress,
    ScheduleOptions,
    TaskInfo,
    TaskPage,
    TaskType,
    check_session_key,
    new_session_key,
    parse_task_page,
    parse_task_types,
    task_object,
)
from stirfried.client_watch import ProgressCallback, TaskWatch
from stirfried.sync_client import SyncStirfriedClient

__all__ = [
    "MyTask",
    "Progress",
    "RequestFailed",
    "ScheduleOptions",
    "StirfriedClient",
    "StirfriedError",
    "SyncStirfriedClient",
    "TaskFailed",
    "TaskInfo",
    "TaskPage",
    "TaskRevoked",
    "TaskTimeout",
    "TaskType",
    "new_session_key",
]


logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
# Events can overtake the send_task acknowledgement (a fast task's worker
# publishes while the ack is still on its way); keep them until it arrives.
EARLY_EVENT_LIMIT = 1000
# Subscription tokens of the tasks this client scheduled, newest kept.
TOKEN_LIMIT = 10_000


class StirfriedClient:
    """An asyncio client of one gateway, over python-socketio.

    :param url: the gateway, e.g. ``http://127.0.0.1:8000``.
    :param headers: sent when connecting (what ``stirfried_header_task_map`` reads).
    :param token: a client token (JWT) for gateways that require one.
    :param serializer: ``"default"`` or ``"msgpack"``, as the gateway's ``socketio_serializer``.
    :param timeout: seconds to wait for the connection and for each reply.
    :param session: on an anonymous gateway, a key (22-128 characters of ``A-Za-z0-9_-``, e.g.
        :func:`new_session_key`) under which the gateway records the tasks this client schedules:
        a later client with the same key lists them with :meth:`my_tasks`. Keep it secret: it is
        what identifies "you". Without one, ``my_tasks`` lists this connection's tasks only.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        serializer: str = "default",
        timeout: float = DEFAULT_TIMEOUT,
        session: str | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._headers = headers or {}
        auth = {"token": token} if token else {}
        if session is not None:
            auth["session"] = check_session_key(session)
        self._auth = auth or None
        self._sio = socketio.AsyncClient(serializer=serializer)
        self._watches: dict[str, TaskWatch] = {}
        self._early: collections.OrderedDict[str, list[tuple[str, dict[str, Any]]]] = (
            collections.OrderedDict()
        )
        self._tokens: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._connected_before = False
        # Why the gateway refused the last connection attempt (its connect_error).
        self._refusal: str | None = None
        self._resubscriptions: set[asyncio.Task[None]] = set()
        for event in protocol.ALL_EVENTS:
            self._sio.on(event, self._dispatcher(event))
        self._sio.on("connect", self._on_connect)
        self._sio.on("connect_error", self._on_connect_error)

    async def __aenter__(self) -> StirfriedClient:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect; raises StirfriedError naming the URL and, when the gateway refused, its reason."""
        self._refusal = None
        try:
            await self._sio.connect(
                self.url, headers=self._headers, auth=self._auth, wait_timeout=self.timeout
            )
        except socketio.exceptions.ConnectionError as error:
            # python-socketio's error only says "namespaces failed to connect";
            # the gateway's reason came with connect_error.
            raise StirfriedError(f"cannot connect to {self.url}: {self._refusal or error}") from error

    async def close(self) -> None:
        """Disconnect (tasks keep running on the workers)."""
        await self._sio.disconnect()

    async def schedule(
        self,
        task_name: str,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[ScheduleOptions],
    ) -> str:
        """Schedule a task and return its id, without waiting for it.

        ``options`` (:class:`ScheduleOptions`): ``chain``, ``room``, Celery's ``countdown``,
        ``eta``, ``expires``, ``priority`` and ``queue`` (each refused, with RequestFailed naming
        it, unless the gateway's ``stirfried_task_options`` allows it), and ``idempotency_key``:
        a repeat with the same key (e.g. after a TaskTimeout) returns the first task's id, and
        the task runs once. RequestFailed also when no live worker serves ``task_name``.
        """
        reply = await self._call("send_task", task_object(task_name, list(args), kwargs or {}, options))
        task_id = reply.get("data")
        if not isinstance(task_id, str):
            raise StirfriedError(f"unexpected reply to send_task: {reply!r}")
        token = reply.get("token")
        if isinstance(token, str):
            self._tokens[task_id] = token
            while len(self._tokens) > TOKEN_LIMIT:
                self._tokens.popitem(last=False)
        return task_id

    def token_for(self, task_id: str) -> str | None:
        """The subscription token the gateway gave for a task this client scheduled."""
        return self._tokens.get(task_id)

    async def run(
        self,
        task_name: str,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- a per-call limit, like python-socketio's call()
        **options: Unpack[ScheduleOptions],
    ) -> Any:
        """Schedule a task and wait for its return value.

        ``on_progress`` (a function or coroutine function) gets each :class:`Progress`
        in order; ``options`` are :meth:`schedule`'s. Raises TaskFailed if the task fails
        (TaskRevoked, a TaskFailed, if it was revoked, expired or terminated), TaskTimeout
        if it does not finish within ``timeout`` seconds (default: the client's timeout).
        With an ``idempotency_key`` the gateway already saw, waits for that first task.
        """
        # A replayed submission (a key the gateway saw) is the first task: the gateway
        # replays its events to this client from the start, as for a task scheduled now.
        task_id = await self.schedule(task_name, *args, kwargs=kwargs, **options)
        watch = TaskWatch(on_progress, self.token_for(task_id))
        return await self._wait(task_id, task_name, watch, timeout)

    async def follow(
        self,
        task_id: str,
        token: str | None = None,
        *,
        after: int = 0,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- a per-call limit, like python-socketio's call()
    ) -> Any:
        """Wait for the return value of a task scheduled elsewhere (or earlier).

        Subscribes with ``token`` (the one ``POST /task`` or ``send_task`` returned;
        default: the token of a task this client scheduled) and replays every event
        after ``after``. Raises like :meth:`run`; RequestFailed for a wrong token.
        """
        token = token or self.token_for(task_id)
        watch = TaskWatch(on_progress, token, after)
        self._watches[task_id] = watch
        try:
            await self._call("subscribe_task", {"task_id": task_id, "after": after, "token": token})
        except BaseException:
            self._watches.pop(task_id, None)
            raise
        return await self._wait(task_id, None, watch, timeout)

    async def _wait(
        self, task_id: str, task_name: str | None, watch: TaskWatch, seconds: float | None
    ) -> Any:
        self._watches[task_id] = watch
        try:
            for event, payload in self._early.pop(task_id, []):
                await watch.handle(event, payload)
            limit = self.timeout if seconds is None else seconds
            try:
                event, payload = await asyncio.wait_for(asyncio.shield(watch.done), limit)
            except TimeoutError as error:
                raise TaskTimeout(
                    f"task {task_name or task_id} ({task_id}) did not finish within {limit:g} s"
                ) from error
        finally:
            self._watches.pop(task_id, None)
        name = task_name or payload.get("task_name") or watch.task_name or "?"
        if event == protocol.ON_REVOKED:
            terminated, expired = payload.get("terminated") is True, payload.get("expired") is True
            raise TaskRevoked(task_id, name, terminated=terminated, expired=expired)
        if payload.get("status") != "SUCCESS":
            raise TaskFailed(task_id, name, payload.get("retval"), watch.einfo)
        return payload.get("retval")

    async def tasks(self) -> list[TaskType]:
        """The tasks this client may schedule that live workers serve (the gateway's catalog),
        sorted by name, each with its docstring, signature and a JSON Schema of its arguments."""
        return parse_task_types(await self._call("list_tasks", {}))

    async def my_tasks(self, limit: int = 20, cursor: str | None = None) -> TaskPage:
        """This caller's recent tasks, newest first: ``limit`` of them after ``cursor`` (a
        page's ``next``). Whose tasks: the token's subject; on an anonymous gateway, the
        ``session``'s (else this connection's)."""
        request: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            request["cursor"] = cursor
        return parse_task_page(await self._call("list_my_tasks", request))

    async def revoke(
        self, task_id: str, *, terminate: bool = False, signal: str | None = None, token: str | None = None
    ) -> None:
        """Revoke a task: a worker drops it if it has not started. With ``terminate`` (where the
        gateway's ``stirfried_terminate`` and the token allow it) a running task is stopped too,
        with ``signal`` (e.g. ``"SIGKILL"``; Celery's default ``SIGTERM``); its followers get
        ``on_revoked``. ``token``: the task's subscription token (default: the one this client got)."""
        token = token or self.token_for(task_id)
        if token is None and not terminate:
            await self._call("revoke_task", task_id)
            return
        request: dict[str, Any] = {"task_id": task_id}
        if token is not None:
            request["token"] = token
        if terminate:
            request["terminate"] = True
            if signal is not None:
                request["signal"] = signal
        await self._call("revoke_task", request)

    async def info(self, task_id: str, *, token: str | None = None) -> TaskInfo:
        """The task's state and result, from the gateway's result backend; RequestFailed for an
        id the gateway never issued. ``token``: as for :meth:`revoke`."""
        token = token or self.token_for(task_id)
        reference = task_id if token is None else {"task_id": task_id, "token": token}
        reply = await self._call("task_info", reference)
        return TaskInfo(id=reply["id"], state=reply["state"], result=reply["result"])

    async def _on_connect(self) -> None:
        if self._connected_before and self._watches:
            # Not here: a handler that waited for a reply would block the client's
            # receive loop, which has to deliver that reply.
            task = asyncio.get_running_loop().create_task(self._resubscribe())
            self._resubscriptions.add(task)
            task.add_done_callback(self._resubscriptions.discard)
        self._connected_before = True

    def _on_connect_error(self, *data: Any) -> None:
        """Keep the refusal's reason for connect() (python-socketio delivers it only here)."""
        reason = data[0] if data else None
        if isinstance(reason, dict):
            reason = reason.get("message")
        self._refusal = reason if isinstance(reason, str) and reason else None

    async def _resubscribe(self) -> None:
        """After a reconnect: ask for every event each awaited task emitted meanwhile."""
        for task_id, watch in list(self._watches.items()):
            if watch.token is None:
                continue
            request = {"task_id": task_id, "after": watch.last_event_id, "token": watch.token}
            if watch.epoch is not None:
                request["epoch"] = watch.epoch
            try:
                await self._call("subscribe_task", request)
            except StirfriedError as error:
                logger.warning("could not resubscribe to task %s: %s", task_id, error)

    async def _call(self, event: str, data: Any) -> dict[str, Any]:
        try:
            reply = await self._sio.call(event, data, timeout=self.timeout)
        except socketio.exceptions.TimeoutError as error:
            raise TaskTimeout(f"no reply to {event} within {self.timeout:g} s") from error
        except socketio.exceptions.BadNamespaceError as error:
            raise StirfriedError(f"not connected to {self.url}") from error
        if not isinstance(reply, dict):
            raise StirfriedError(f"unexpected reply to {event}: {reply!r}")
        if reply.get("status") == "failed":
            raise RequestFailed(str(reply.get("data")))
        return reply

    def _dispatcher(self, event: str) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def dispatch(payload: Any) -> None:
            if not isinstance(payload, dict) or not isinstance(payload.get("task_id"), str):
                return
            task_id = payload["task_id"]
            watch = self._watches.get(task_id)
            if watch is not None:
                await watch.handle(event, payload)
                return
            self._early.setdefault(task_id, []).append((event, payload))
            while len(self._early) > EARLY_EVENT_LIMIT:
                self._early.popitem(last=False)

        return dispatch
