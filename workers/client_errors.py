"""The errors of the Python client (``stirfried.client`` re-exports them)."""

from __future__ import annotations


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


class TaskRevoked(TaskFailed):
    """The task was revoked: dropped before it started, expired (its ``expires`` passed while it
    was queued), or ``terminated`` while it ran. A final outcome, like a failure."""

    def __init__(
        self, task_id: str, task_name: str, *, terminated: bool = False, expired: bool = False
    ) -> None:
        if terminated:
            reason = "the task was terminated"
        elif expired:
            reason = "the task expired before it started"
        else:
            reason = "the task was revoked"
        super().__init__(task_id, task_name, reason, None)
        self.terminated = terminated
        self.expired = expired


class TaskTimeout(StirfriedError, TimeoutError):
    """The task did not finish (or the gateway did not answer) in time."""
