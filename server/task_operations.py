"""Reading, revoking and listing tasks, the same way for the HTTP and the Socket.IO API.

Each operation walks down the same steps: spend the caller's budget
(:mod:`limits`), check its right to the task (:mod:`task_access`), then ask
Celery (:mod:`celery_facade`), the catalog (:mod:`task_catalog`) or the task
records (:mod:`task_records`). Scheduling has its own module, :mod:`scheduling`.
"""

from __future__ import annotations

from typing import Any

from celery import states

from stirfried.server import replies
from stirfried.server.caller import Caller
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.errors import NotPermitted, TaskNotAllowed, UnknownTask
from stirfried.server.limits import READ_COST, REVOKE_COST, RateLimiter
from stirfried.server.task_access import TaskAccess
from stirfried.server.task_catalog import TaskCatalog
from stirfried.server.task_records import TaskRecords
from stirfried.server.task_request import PageRequest, RevokeRequest
from stirfried.settings import StirfriedSettings


class TaskOperations:
    """``task_info``, ``revoke_task``, ``list_tasks`` and ``list_my_tasks``."""

    def __init__(
        self,
        celery: CeleryFacade,
        access: TaskAccess,
        budget: RateLimiter,
        catalog: TaskCatalog,
        records: TaskRecords,
        settings: StirfriedSettings,
    ) -> None:
        self._celery = celery
        self._access = access
        self._budget = budget
        self._catalog = catalog
        self._records = records
        self._settings = settings

    async def info(self, caller: Caller, task_id: str, token: str | None) -> dict[str, Any]:
        """``{id, state, result}`` from the result backend; UnknownTask (404) for an id the
        fleet never issued, where the records can tell."""
        await self._accessible(caller, task_id, token, READ_COST)
        state = await self._celery.task_state(task_id)
        if state.state == states.PENDING and await self._records.known(task_id) is False:
            raise UnknownTask(f"no task with id '{task_id}' (never issued, or its record has expired)")
        return replies.task_info(state, self._settings.error_info)

    async def revoke(self, caller: Caller, request: RevokeRequest) -> None:
        """Revoke a task (unknown ids too, as in Stirfried 0.7.0); terminate it where the
        settings and the caller's token allow."""
        if request.terminate:
            if not self._settings.terminate:
                raise TaskNotAllowed(
                    "terminating tasks is not available on this gateway (stirfried_terminate)"
                )
            if not caller.principal.may_terminate():
                raise TaskNotAllowed("the token does not allow terminating tasks")
        await self._accessible(caller, request.task_id, request.token, REVOKE_COST)
        await self._celery.revoke(request.task_id, request.terminate, request.signal)

    async def available(self, caller: Caller) -> list[dict[str, Any]]:
        """The tasks ``caller`` may schedule that live workers serve, by name; with
        ``stirfried_refuse_unserved_tasks`` off, allowlisted tasks nobody announces too."""
        caller.principal.check_current()
        self._budget.take(caller.rate_key, READ_COST)
        await self._catalog.refresh_if_stale()
        allowlist = self._settings.available_tasks
        listed = {
            task.name: task.describe()
            for task in self._catalog.tasks()
            if (not allowlist or task.name in allowlist) and caller.principal.may_schedule(task.name)
        }
        if not self._settings.refuse_unserved_tasks:
            for name in allowlist:
                if name not in listed and caller.principal.may_schedule(name):
                    listed[name] = {
                        "name": name,
                        "doc": None,
                        "signature": None,
                        "parameters": None,
                        "queues": [],
                        "workers": 0,
                    }
        return [listed[name] for name in sorted(listed)]

    async def mine(self, caller: Caller, page: PageRequest) -> dict[str, Any]:
        """A page of the caller's recent tasks, newest first, each with its subscription token."""
        caller.principal.check_current()
        self._budget.take(caller.rate_key, READ_COST)
        tags = caller.listing_tags
        if not tags:
            raise NotPermitted(
                "listing your tasks needs a token, or a Socket.IO connection on an anonymous gateway"
            )
        found = await self._records.page(tags, page.limit, page.cursor)
        return {
            "status": "success",
            "data": [
                {
                    "id": record.task_id,
                    "name": record.name,
                    "state": record.state,
                    "scheduled": record.scheduled,
                    "started": record.started,
                    "finished": record.finished,
                    "token": self._access.issue_token(record.task_id),
                }
                for record in found.records
            ],
            "next": repr(found.next) if found.next is not None else None,
        }

    async def _accessible(self, caller: Caller, task_id: str, token: str | None, cost: float) -> None:
        """Raise unless ``caller`` may read and revoke ``task_id`` and ``cost`` fits its budget."""
        self._budget.take(caller.rate_key, cost)
        await self._access.check_task_access(caller.principal, task_id, token)
