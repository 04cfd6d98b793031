"""The Celery app the test workers run: real tasks on ``StirfriedTask``."""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

from stirfried.celery import StirfriedTask, configure_from_file

app = Celery("stirfried-tests", task_cls=StirfriedTask)
configure_from_file(app)


@app.task(name="add")
def add(x: Any, y: Any, room: str | None = None) -> Any:
    return x + y


@app.task(bind=True, name="progress")
def progress(self: StirfriedTask, steps: int, room: str | None = None) -> int:
    for step in range(1, steps + 1):
        self.emit_progress(step, steps, info={"message": f"step {step}"})
    return steps


@app.task(name="fail")
def fail(message: str, room: str | None = None) -> None:
    raise ValueError(message)


@app.task(bind=True, name="retry_once", max_retries=1)
def retry_once(self: StirfriedTask, room: str | None = None) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=RuntimeError("first attempt failed"), countdown=0.1)
    return "second attempt"


@app.task(name="sleep")
def sleep(seconds: float, room: str | None = None) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="echo_kwargs")
def echo_kwargs(*_previous_result: Any, room: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"room": room, **kwargs}


@app.task(name="append")
def append(items: list[Any], item: Any, room: str | None = None) -> list[Any]:
    return [*items, item]


@app.task(name="reverse_bytes")
def reverse_bytes(data: bytes, room: str | None = None) -> bytes:
    return bytes(data[::-1])


@app.task(bind=True, name="pid_then_sleep")
def pid_then_sleep(self: StirfriedTask, seconds: float, room: str | None = None) -> float:
    """Reports the pool process's pid (so a test can kill it), then sleeps."""
    self.emit_progress(0, 1, info={"pid": os.getpid(), "attempt": self.request.retries})
    time.sleep(seconds)
    return seconds


# Celery's recipe for tasks that must survive a lost worker process: acknowledge
# after running, and requeue when the process running it dies.
@app.task(bind=True, name="durable_pid_then_sleep", acks_late=True, reject_on_worker_lost=True)
def durable_pid_then_sleep(self: StirfriedTask, seconds: float, room: str | None = None) -> float:
    self.emit_progress(0, 1, info={"pid": os.getpid()})
    time.sleep(seconds)
    return seconds


@app.task(bind=True, name="slow_progress")
def slow_progress(self: StirfriedTask, steps: int, delay: float, room: str | None = None) -> int:
    for step in range(1, steps + 1):
        time.sleep(delay)
        self.emit_progress(step, steps)
    return steps


@app.task(name="send_email")
def send_email(address: str, user: str | None = None, room: str | None = None) -> dict[str, Any]:
    """A task with a header-mapped argument (``user``) that could be filled positionally."""
    return {"address": address, "user": user}


@app.task(name="count_run")
def count_run(key: str, room: str | None = None) -> int:
    """Counts its runs in Redis under ``key`` (a submit retried with one idempotency key runs once)."""
    with redis.Redis.from_url(app.conf.stirfried_redis_url) as client:
        return int(client.incr(f"stirfried-tests:runs:{key}"))


@app.task(bind=True, name="report_request")
def report_request(self: StirfriedTask, room: str | None = None) -> dict[str, Any]:
    """The Celery options the task arrived with (its queue, priority, eta, expiry)."""
    request = self.request
    return {
        "queue": (request.delivery_info or {}).get("routing_key"),
        "priority": (request.delivery_info or {}).get("priority"),
        "eta": request.eta,
        "expires": request.expires,
    }
