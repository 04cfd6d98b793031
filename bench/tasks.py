"""Benchmark tasks, run by the benchmark's Celery worker."""

from __future__ import annotations

from celery import Celery

from stirfried.celery import StirfriedTask, configure_from_file

app = Celery("stirfried-bench", task_cls=StirfriedTask)
configure_from_file(app)


@app.task(name="noop")
def noop(room: str | None = None) -> None:
    return None


@app.task(name="add")
def add(x: int, y: int, room: str | None = None) -> int:
    return x + y


@app.task(bind=True, name="flood")
def flood(self: StirfriedTask, events: int, room: str | None = None) -> int:
    for number in range(1, events + 1):
        self.emit_progress(number, events)
    return events
