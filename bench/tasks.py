"""Benchmark tasks on our worker library, configured from the Stirfried YAML file."""

from __future__ import annotations

from celery import Celery

from bench.task_bodies import register
from stirfried.celery import StirfriedTask, configure_from_file

app = Celery("stirfried-bench", task_cls=StirfriedTask)
configure_from_file(app)
register(app)
