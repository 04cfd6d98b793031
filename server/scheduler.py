"""Scheduling a task, the same way for the HTTP and the Socket.IO API."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from stirfried.server.celery_facade import CeleryFacade, CeleryUnavailable
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

    def __init__(self, celery: CeleryFacade, settings: StirfriedSettings, metrics: GatewayMetrics) -> None:
        self._celery = celery
        self._settings = settings
        self._metrics = metrics

    async def schedule(
        self, data: Any, default_room: str, headers: Mapping[str, str], api: str, client: str
    ) -> str:
        """Publish the task object ``data``; return the task id.

        Raises RequestRejected (bad input, forbidden task) or CeleryUnavailable.
        """
        name = INVALID_TASK_NAME
        try:
            task = parse_task_request(data)
            name = task.call.name
            check_allowed(task, self._settings.available_tasks)
            plan = plan_publish(task, default_room, headers, self._settings)
            task_id = await self._celery.publish(plan)
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
        logger.info("scheduled task %s id=%s api=%s client=%s", name, task_id, api, client)
        return task_id

    def _count_rejected(self, name: str, api: str, reason: str) -> None:
        self._metrics.tasks_rejected.labels(self._metrics.task_name(name), api, reason).inc()
