"""Run the example Celery worker, and the user's own workers, next to a development gateway."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from stirfried.config import CONFIG_PATH_VARIABLE, Config
from stirfried.server.development.parent_death import die_with_gateway

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0
# The example tasks (stirfried/examples.py) have a queue of their own, so the
# example worker never takes a task meant for the user's worker (Celery's
# default queue, "celery"); the gateway routes them there.
EXAMPLE_QUEUE = "stirfried-examples"
EXAMPLE_TASKS = ("add", "count_to", "fail", "flaky", "sleep")


def worker_environment(config: Config, config_path: str) -> dict[str, str]:
    """The environment that points a worker at the same file and the same services."""
    environment = dict(os.environ)
    environment["STIRFRIED_EXAMPLE_QUEUE"] = EXAMPLE_QUEUE
    environment[CONFIG_PATH_VARIABLE] = os.path.abspath(config_path)
    # The embedded server's URL exists only at run time: hand it over through
    # the same variables an operator uses to keep secrets out of the file.
    environment["STIRFRIED_BROKER_URL"] = str(config.celery.get("broker_url", ""))
    environment["STIRFRIED_RESULT_BACKEND"] = str(config.celery.get("result_backend", ""))
    environment["STIRFRIED_REDIS_URL"] = config.stirfried.redis_url
    return environment


def route_example_tasks(config: Config) -> Config:
    """Send the example tasks to EXAMPLE_QUEUE (routes in the config win)."""
    example_routes: dict[str, Any] = {name: {"queue": EXAMPLE_QUEUE} for name in EXAMPLE_TASKS}
    routes = config.celery.get("task_routes")
    if not routes:
        merged: Any = example_routes
    elif isinstance(routes, Mapping):
        merged = {**example_routes, **routes}
    elif isinstance(routes, (list, tuple)):
        merged = [*routes, example_routes]
    else:
        merged = [routes, example_routes]
    return config.with_celery(task_routes=merged)


@contextlib.contextmanager
def celery_worker(
    config: Config, config_path: str, app_module: str, queues: Sequence[str] | None, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``celery -A app_module worker``; stop it (warm shutdown) on exit.

    It runs in a process group of its own: Ctrl-C in a terminal signals the
    whole foreground group, and the gateway, not the terminal, stops the
    worker, and does so before the embedded Valkey it needs to finish.
    ``python -m`` puts the working directory on ``sys.path``, so a ``tasks.py``
    there is found. Without ``queues``, the app's default queue.
    """
    command = [
        sys.executable, "-m", "celery", "-A", app_module, "worker", "--loglevel=INFO",
        "--concurrency=2", f"--hostname={name}@%h",
    ]  # fmt: skip
    if queues:
        command.append(f"--queues={','.join(queues)}")
    process = subprocess.Popen(
        command, env=worker_environment(config, config_path), process_group=0, preexec_fn=die_with_gateway()
    )
    logger.info("started the Celery worker for %s (pid %s, queues %s)", app_module, process.pid, queues)
    try:
        yield process
    finally:
        stop(process)


def example_worker(
    config: Config, config_path: str
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """The example worker. It takes only EXAMPLE_QUEUE: a user's worker, started with
    ``--worker`` or on its own, gets every other task (Celery's default queue)."""
    return celery_worker(config, config_path, "stirfried.examples", [EXAMPLE_QUEUE], "stirfried-examples")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM is Celery's warm shutdown: tasks in flight finish (up to STOP_TIMEOUT)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
