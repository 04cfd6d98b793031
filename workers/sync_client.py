"""The blocking Python client, for scripts (``stirfried.client`` re-exports it)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from stirfried.client_types import Progress, TaskInfo, TaskPage, TaskType

if TYPE_CHECKING:
    from stirfried.client import StirfriedClient

T = TypeVar("T")


class SyncStirfriedClient:
    """The same API, blocking: runs a :class:`StirfriedClient` on a private event loop thread."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stirfried-client", daemon=True)
        self._thread.start()
        self._client: StirfriedClient = self._wait(self._create(url, options))

    async def _create(self, url: str, options: dict[str, Any]) -> StirfriedClient:
        from stirfried.client import StirfriedClient

        return StirfriedClient(url, **options)

    def __enter__(self) -> SyncStirfriedClient:
        try:
            self.connect()
        except BaseException:
            self.close()  # __exit__ will not run: stop the client's thread here
            raise
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

    def revoke(self, task_id: str, **options: Any) -> None:
        """Revoke (``terminate=``, ``signal=``, ``token=`` as :meth:`StirfriedClient.revoke`)."""
        self._wait(self._client.revoke(task_id, **options))

    def tasks(self) -> list[TaskType]:
        return self._wait(self._client.tasks())

    def my_tasks(self, limit: int = 20, cursor: str | None = None) -> TaskPage:
        return self._wait(self._client.my_tasks(limit, cursor))

    def info(self, task_id: str, **options: Any) -> TaskInfo:
        return self._wait(self._client.info(task_id, **options))

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()
