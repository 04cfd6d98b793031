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

Needs the ``client`` extra (``pip install "/path/to/stirfried-checkout[client]"``): python-socketio's
asyncio client runs on aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import socketio

from stirfried import protocol

T = TypeVar("T")

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
# Events can overtake the send_task acknowledgement (a fast task's worker
# publishes while the ack is still on its way); keep them until it arrives.
EARLY_EVENT_LIMIT = 1000
# Subscription tokens of the tasks this client scheduled, newest kept.
TOKEN_LIMIT = 10_000


class StirfriedError(Exception):
    """Base class of the client's errors."""


class RequestFailed(StirfriedError):
    """The gateway answered ``{"status": "failed"}``; the message says why."""


class TaskFailed(StirfriedError):
    """The task raised. ``error`` and ``einfo`` are set when the gateway's workers share them."""

    def __init__(self, task_id: str, task_name: str, error: str | None, einfo: str | None) -> None:
        detail = error or "no details: the workers run with stirfried_error_info off"
        super().__init__(f"task {task_name} ({task_id}) failed: {detail}")
        self.task_id = task_id
        self.task_name = task_name
        self.error = error
        self.einfo = einfo


class TaskTimeout(StirfriedError, TimeoutError):
    """The task did not finish (or the gateway did not answer) in time."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """One ``on_progress`` event."""

    task_id: str
    current: Any
    total: Any
    info: Any


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """A task's state from the result backend."""

    id: str
    state: str
    result: Any


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


class _TaskWatch:
    """Collects one task's events until its ``on_return``, each ``event_id`` once."""

    def __init__(self, on_progress: ProgressCallback | None, token: str | None, after: int = 0) -> None:
        self.on_progress = on_progress
        self.token = token
        self.last_event_id = after
        self.epoch: str | None = None
        """The epoch of the log that numbered the events seen (a new one restarts the count)."""
        self.done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.einfo: str | None = None
        self.task_name: str | None = None

    async def handle(self, event: str, payload: dict[str, Any]) -> None:
        if isinstance(payload.get("task_name"), str):
            self.task_name = payload["task_name"]
        event_id = payload.get(protocol.EVENT_ID)
        epoch = payload.get(protocol.EPOCH)
        if isinstance(event_id, int):
            new_log = isinstance(epoch, str) and self.epoch is not None and epoch != self.epoch
            if event_id <= self.last_event_id and not new_log:
                return  # already seen (delivered live and replayed)
            self.last_event_id = event_id
            if isinstance(epoch, str):
                self.epoch = epoch
        if event == protocol.ON_PROGRESS and self.on_progress is not None:
            outcome = self.on_progress(
                Progress(payload["task_id"], payload["current"], payload["total"], payload["info"])
            )
            if inspect.isawaitable(outcome):
                await outcome
        elif event == protocol.ON_FAILURE:
            self.einfo = payload.get("einfo")
        elif event == protocol.ON_RETURN and not self.done.done():
            self.done.set_result(payload)
        elif event == protocol.ON_REVOKED and not self.done.done():
            self.done.set_result(
                {"status": "REVOKED", "retval": "the task was revoked", "task_name": self.task_name}
            )


class StirfriedClient:
    """An asyncio client of one gateway, over python-socketio.

    :param url: the gateway, e.g. ``http://127.0.0.1:8000``.
    :param headers: sent when connecting (what ``stirfried_header_task_map`` reads).
    :param token: a client token (JWT) for gateways that require one.
    :param serializer: ``"default"`` or ``"msgpack"``, as the gateway's ``socketio_serializer``.
    :param timeout: seconds to wait for the connection and for each reply.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        serializer: str = "default",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._headers = headers or {}
        self._auth = {"token": token} if token else None
        self._sio = socketio.AsyncClient(serializer=serializer)
        self._watches: dict[str, _TaskWatch] = {}
        self._early: collections.OrderedDict[str, list[tuple[str, dict[str, Any]]]] = (
            collections.OrderedDict()
        )
        self._tokens: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._connected_before = False
        self._resubscriptions: set[asyncio.Task[None]] = set()
        for event in protocol.ALL_EVENTS:
            self._sio.on(event, self._dispatcher(event))
        self._sio.on("connect", self._on_connect)

    async def __aenter__(self) -> StirfriedClient:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect; raises StirfriedError naming the URL when the gateway cannot be reached."""
        try:
            await self._sio.connect(
                self.url, headers=self._headers, auth=self._auth, wait_timeout=self.timeout
            )
        except socketio.exceptions.ConnectionError as error:
            raise StirfriedError(f"cannot connect to {self.url}: {error}") from error

    async def close(self) -> None:
        """Disconnect (tasks keep running on the workers)."""
        await self._sio.disconnect()

    async def schedule(
        self,
        task_name: str,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        chain: list[dict[str, Any]] | None = None,
        room: str | None = None,
    ) -> str:
        """Schedule a task and return its id, without waiting for it."""
        task: dict[str, Any] = {"task_name": task_name, "args": list(args), "kwargs": kwargs or {}}
        if chain is not None:
            task["chain"] = chain
        if room is not None:
            task["room"] = room
        reply = await self._call("send_task", task)
        task_id: str = reply["data"]
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
    ) -> Any:
        """Schedule a task and wait for its return value.

        ``on_progress`` (a function or coroutine function) gets each :class:`Progress`
        in order. Raises TaskFailed if the task fails (also, at once, when the worker
        that received it runs no task of that name: the error names ``NotRegistered``),
        TaskTimeout if it does not finish within ``timeout`` seconds (default: the
        client's timeout; a name that no running worker's queue receives ends so).
        """
        task_id = await self.schedule(task_name, *args, kwargs=kwargs)
        watch = _TaskWatch(on_progress, self.token_for(task_id))
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
        watch = _TaskWatch(on_progress, token, after)
        self._watches[task_id] = watch
        try:
            await self._call("subscribe_task", {"task_id": task_id, "after": after, "token": token})
        except BaseException:
            self._watches.pop(task_id, None)
            raise
        return await self._wait(task_id, None, watch, timeout)

    async def _wait(
        self, task_id: str, task_name: str | None, watch: _TaskWatch, seconds: float | None
    ) -> Any:
        self._watches[task_id] = watch
        try:
            for event, payload in self._early.pop(task_id, []):
                await watch.handle(event, payload)
            limit = self.timeout if seconds is None else seconds
            try:
                returned = await asyncio.wait_for(asyncio.shield(watch.done), limit)
            except TimeoutError as error:
                raise TaskTimeout(
                    f"task {task_name or task_id} ({task_id}) did not finish within {limit:g} s"
                ) from error
        finally:
            self._watches.pop(task_id, None)
        if returned["status"] != "SUCCESS":
            name = task_name or returned.get("task_name") or watch.task_name or "?"
            raise TaskFailed(task_id, name, returned.get("retval"), watch.einfo)
        return returned["retval"]

    async def revoke(self, task_id: str) -> None:
        """Revoke a task that has not started yet."""
        await self._call("revoke_task", task_id)

    async def info(self, task_id: str) -> TaskInfo:
        """The task's state and result, from the gateway's result backend."""
        reply = await self._call("task_info", task_id)
        return TaskInfo(id=reply["id"], state=reply["state"], result=reply["result"])

    async def _on_connect(self) -> None:
        if self._connected_before and self._watches:
            # Not here: a handler that waited for a reply would block the client's
            # receive loop, which has to deliver that reply.
            task = asyncio.get_running_loop().create_task(self._resubscribe())
            self._resubscriptions.add(task)
            task.add_done_callback(self._resubscriptions.discard)
        self._connected_before = True

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


class SyncStirfriedClient:
    """The same API, blocking: runs a :class:`StirfriedClient` on a private event loop thread."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stirfried-client", daemon=True)
        self._thread.start()
        self._client: StirfriedClient = self._wait(self._create(url, options))

    async def _create(self, url: str, options: dict[str, Any]) -> StirfriedClient:
        return StirfriedClient(url, **options)

    def __enter__(self) -> SyncStirfriedClient:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        self._wait(self._client.connect())

    def close(self) -> None:
        """Disconnect and stop the loop thread."""
        try:
            self._wait(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def schedule(self, task_name: str, *args: Any, **options: Any) -> str:
        return self._wait(self._client.schedule(task_name, *args, **options))

    def run(
        self,
        task_name: str,
        *args: Any,
        on_progress: Callable[[Progress], None] | None = None,
        **options: Any,
    ) -> Any:
        """Schedule and wait; ``on_progress`` runs on the client's loop thread."""
        return self._wait(self._client.run(task_name, *args, on_progress=on_progress, **options))

    def follow(
        self,
        task_id: str,
        token: str | None = None,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        **options: Any,
    ) -> Any:
        """Wait for a task scheduled elsewhere, given its subscription token."""
        return self._wait(self._client.follow(task_id, token, on_progress=on_progress, **options))

    def token_for(self, task_id: str) -> str | None:
        return self._client.token_for(task_id)

    def revoke(self, task_id: str) -> None:
        self._wait(self._client.revoke(task_id))

    def info(self, task_id: str) -> TaskInfo:
        return self._wait(self._client.info(task_id))

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()
