"""The benchmark's tasks, registered on whichever Celery app runs them.

The same bodies run on our worker library (``bench.tasks``) and on Stirfried
0.7.0's (``bench.legacy_tasks``), so both systems do identical work.
"""

from __future__ import annotations

from typing import Any

import celery


def register(app: celery.Celery[Any]) -> None:
    """Add ``noop``, ``add`` and ``flood`` to ``app`` (whose task class is a StirfriedTask)."""

    @app.task(name="noop")
    def noop(room: str | None = None) -> None:
        return None

    @app.task(name="add")
    def add(x: int, y: int, room: str | None = None) -> int:
        return x + y

    @app.task(bind=True, name="flood")
    def flood(self: Any, events: int, room: str | None = None) -> int:
        for number in range(1, events + 1):
            self.emit_progress(number, events)
        return events
