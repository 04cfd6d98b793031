"""Example tasks, run by ``stirfried-server --example-worker``.

Started by the gateway, they have a Celery queue of their own (the gateway routes
them there and names it in ``STIRFRIED_EXAMPLE_QUEUE``; this app then routes the
tasks it publishes itself, a chain's next task, there too), so the example worker
and the user's own worker (Celery's default queue) never take each other's tasks.
Each task takes ``room=None``: the gateway uses it to route the task's events.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from stirfried.celery import StirfriedTask, configure_from_file

app = Celery("stirfried-examples", task_cls=StirfriedTask)
configure_from_file(app)


@app.task(name="add")
def add(x: float, y: float, room: str | None = None) -> float:
    """Add two numbers."""
    return x + y


@app.task(bind=True, name="count_to")
def count_to(self: StirfriedTask, total: int = 10, delay: float = 0.3, room: str | None = None) -> int:
    """Count to ``total``, reporting progress at every step."""
    for step in range(1, total + 1):
        time.sleep(delay)
        self.emit_progress(step, total, info=f"step {step} of {total}")
    return total


@app.task(name="fail")
def fail(message: str = "this task always fails", room: str | None = None) -> None:
    """Raise ValueError, to see ``on_failure``."""
    raise ValueError(message)


@app.task(bind=True, name="flaky", max_retries=3)
def flaky(self: StirfriedTask, failures: int = 2, room: str | None = None) -> str:
    """Fail ``failures`` times, retrying after a second each time, then succeed."""
    if self.request.retries < failures:
        raise self.retry(exc=RuntimeError(f"attempt {self.request.retries + 1} failed"), countdown=1)
    return f"succeeded after {failures} retries"


@app.task(name="sleep")
def sleep(seconds: float = 5.0, room: str | None = None) -> Any:
    """Sleep, so there is time to revoke queued copies."""
    time.sleep(seconds)
    return seconds


EXAMPLE_TASKS = ("add", "count_to", "fail", "flaky", "sleep")
_queue = os.environ.get("STIRFRIED_EXAMPLE_QUEUE")
if _queue:
    app.conf.task_routes = [{name: {"queue": _queue} for name in EXAMPLE_TASKS}]
