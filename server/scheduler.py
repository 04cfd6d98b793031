"""Scheduling a task, the same way for the HTTP and the Socket.IO API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from stirfried.server.access import TaskAccess
from stirfried.server.auth import ANONYMOUS, Principal
from stirfried.server.celery_facade import CeleryFacade, CeleryUnavailable
from stirfried.server.limits import RateLimited, RateLimiter, check_shape
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.scheduling import plan_publish
from stirfried.server.task_request import (
    RequestRejected,
    TaskNotAllowed,
    check_allowed,
    parse_task_request,
)
from stirfried.settings import StirfriedSettings

logger = logging.getLogger(__name__)

INVALID_TASK_NAME = "(invalid)"


class TaskScheduler:
    """Validate, plan and publish a task object; count and log the outcome."""

    def __init__(
        self, celery: CeleryFacade, settings: StirfriedSettings, metrics: GatewayMetrics, access: TaskAccess
    ) -> None:
        self._celery = celery
        self._settings = settings
        self._metrics = metrics
        self._access = access
        self._rate_limiter = RateLimiter(settings.rate_limit, settings.rate_burst)

    async def schedule(
        self,
        data: Any,
        default_room: str,
        headers: Mapping[str, str],
        api: str,
        client: str,
        principal: Principal = ANONYMOUS,
        rate_key: str | None = None,
    ) -> str:
        """Publish the task object ``data`` for ``principal``; return the task id.

        ``client`` identifies the sender in logs. The rate limit counts per token
        subject, else per ``rate_key`` (default: ``client``). Raises RequestRejected
        (bad input, forbidden task, too many tasks, expired token) or CeleryUnavailable.
        """
        name = INVALID_TASK_NAME
        try:
            principal.check_current()
            task = parse_task_request(data)
            name = task.call.name
            for call in task.calls():
                check_shape(call.args, self._settings.max_nesting, "args")
                check_shape(call.kwargs, self._settings.max_nesting, "kwargs")
            check_allowed(task, self._settings.available_tasks)
            for call in task.calls():
                if not principal.may_schedule(call.name):
                    raise TaskNotAllowed(f"the token does not allow task '{call.name}'")
            self._rate_limiter.take(principal.subject or rate_key or client)
            plan = plan_publish(task, default_room, headers, self._settings, principal.subject)
            # Tagging (token holders only) never fails the request, so it overlaps the publish:
            # nobody can follow the task before its id is returned, which is after both.
            _, task_id = await asyncio.gather(
                self._access.tag(plan.main.task_id, principal), self._celery.publish(plan)
            )
        except RateLimited:
            self._count_rejected(name, api, "rate_limited")
            raise
        except TaskNotAllowed:
            self._count_rejected(name, api, "forbidden")
            raise
        except RequestRejected:
            self._count_rejected(name, api, "invalid")
            raise
        except CeleryUnavailable:
            self._count_rejected(name, api, "unavailable")
            raise
        self._metrics.tasks_scheduled.labels(self._metrics.task_name(name), api).inc()
        logger.info(
            "scheduled task %s id=%s api=%s client=%s subject=%s",
            name,
            task_id,
            api,
            client,
            principal.subject,
        )
        return task_id

    def _count_rejected(self, name: str, api: str, reason: str) -> None:
        self._metrics.tasks_rejected.labels(self._metrics.task_name(name), api, reason).inc()
