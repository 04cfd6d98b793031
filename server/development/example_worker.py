"""Run the example Celery worker next to a development gateway."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

from stirfried.config import CONFIG_PATH_VARIABLE, Config

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0


def worker_environment(config: Config, config_path: str) -> dict[str, str]:
    """The environment that points a worker at the same file and the same services."""
    environment = dict(os.environ)
    environment[CONFIG_PATH_VARIABLE] = os.path.abspath(config_path)
    # The embedded server's URL exists only at run time: hand it over through
    # the same variables an operator uses to keep secrets out of the file.
    environment["STIRFRIED_BROKER_URL"] = str(config.celery.get("broker_url", ""))
    environment["STIRFRIED_RESULT_BACKEND"] = str(config.celery.get("result_backend", ""))
    environment["STIRFRIED_REDIS_URL"] = config.stirfried.redis_url
    return environment


@contextlib.contextmanager
def example_worker(config: Config, config_path: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``celery -A stirfried.examples worker``; stop it (warm shutdown) on exit."""
    command = [
        sys.executable, "-m", "celery", "-A", "stirfried.examples", "worker",
        "--loglevel=INFO", "--concurrency=2", "--hostname=stirfried-examples@%h",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=worker_environment(config, config_path))
    logger.info("started the example worker (pid %s)", process.pid)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
