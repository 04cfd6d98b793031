"""Benchmark tasks on Stirfried 0.7.0's worker library (run in its own virtual environment).

0.7.0 reads its configuration from a ``settings`` module, as its README says.
"""

from __future__ import annotations

from celery import Celery

from bench.task_bodies import register
from stirfried.celery import StirfriedTask

app = Celery("stirfried-bench", task_cls=StirfriedTask)
app.config_from_object("settings")
register(app)
