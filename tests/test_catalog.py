"""The catalog (issue 15): workers announce their tasks; the gateway lists them and refuses
what no live worker serves."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from stirfried import protocol
from stirfried.server.caller import Authenticator
from tests import services
from tests.helpers import post_task, url_of, wait_for_state

CATALOG_QUEUE = "stirfried-tests-catalog"
CATALOG_TTL = 2
SECRET = "catalog-test-secret-0123456789abcdef"


@pytest.fixture
def catalog_worker_config(base_config: dict[str, Any], tmp_path: Path) -> Path:
    config = {**base_config, "task_default_queue": CATALOG_QUEUE, "stirfried_catalog_ttl": CATALOG_TTL}
    services.purge_queues(base_config["broker_url"], [CATALOG_QUEUE])
    return services.write_config(tmp_path / "catalog-worker.yaml", config)


@pytest.fixture
def catalog_worker(catalog_worker_config: Path, tmp_path: Path) -> Iterator[str]:
    with services.celery_worker(
        catalog_worker_config,
        CATALOG_QUEUE,
        tmp_path / "worker.log",
        concurrency=1,
        app="tests.catalog_worker_app",
    ) as hostname:
        yield hostname


@contextlib.asynccontextmanager
async def running_worker(config: Path, log: Path) -> AsyncIterator[str]:
    """The catalog worker, started and stopped off the event loop (the gateway runs on it)."""
    worker = services.celery_worker(config, CATALOG_QUEUE, log, concurrency=1, app="tests.catalog_worker_app")
    with contextlib.ExitStack() as stack:
        hostname = await asyncio.to_thread(stack.enter_context, worker)
        try:
            yield hostname
        finally:
            await asyncio.to_thread(stack.close)


async def catalog(http: Any, gateway: Any, **options: Any) -> dict[str, Any]:
    async with http.get(url_of(gateway, "/tasks"), **options) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    return {entry["name"]: entry for entry in body["data"]}


async def wait_until_listed(http: Any, gateway: Any, name: str, listed: bool, timeout: float) -> float:
    """Seconds until ``name`` is (or is no longer) in the catalog."""
    started = time.monotonic()
    while (name in await catalog(http, gateway)) != listed:
        assert time.monotonic() - started < timeout, f"{name} still {'missing' if listed else 'listed'}"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_the_catalog_lists_what_live_workers_serve_and_never_celerys_own_tasks(gateway, http):
    tasks = await catalog(http, gateway)

    assert {"add", "progress", "send_email", "count_run"} <= set(tasks)
    assert not [name for name in tasks if name.startswith("celery.")]
    add = tasks["add"]
    assert add["workers"] >= 1
    assert add["signature"] == "(x: Any, y: Any)"
    assert add["parameters"]["required"] == ["x", "y"]
    assert "room" not in add["parameters"]["properties"]
    assert "stirfried-tests" in add["queues"]


async def test_a_task_description_has_its_doc_defaults_and_a_json_schema(gateway, http, catalog_worker):
    entry = (await catalog(http, gateway))["resize_image"]

    assert entry["doc"] == "Resize the image at ``path``."
    assert entry["workers"] == 1
    assert entry["queues"] == [CATALOG_QUEUE]
    assert entry["parameters"] == {
        "type": "object",
        "properties": {
            "path": {"title": "path", "type": "string"},
            "width": {"title": "width", "type": "integer"},
            "height": {"title": "height", "type": "integer", "default": 100},
            "mode": {"title": "mode", "enum": ["fit", "fill"], "default": "fit"},
            "tags": {
                "title": "tags",
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["path", "width"],
        "additionalProperties": False,
    }
    assert entry["signature"].startswith("(path: str, width: int, height: int = 100")
    # In the signature's order, so a form built from the schema reads like the function.
    assert list(entry["parameters"]["properties"]) == ["path", "width", "height", "mode", "tags"]


async def test_a_stopped_or_killed_worker_leaves_the_catalog_within_the_ttl(
    gateway, http, catalog_worker_config, tmp_path
):
    log = tmp_path / "worker.log"
    async with running_worker(catalog_worker_config, log):
        await wait_until_listed(http, gateway, "resize_image", True, timeout=5)
    # Gone within the announcement's ttl plus the gateway's refresh interval.
    assert (
        await wait_until_listed(http, gateway, "resize_image", False, timeout=CATALOG_TTL + 3)
        <= CATALOG_TTL + 3
    )

    async with running_worker(catalog_worker_config, log) as hostname:
        await wait_until_listed(http, gateway, "resize_image", True, timeout=5)
        await asyncio.to_thread(
            subprocess.run, ["pkill", "-KILL", "-f", f"[-]-hostname {hostname}"], check=True
        )
        assert (
            await wait_until_listed(http, gateway, "resize_image", False, timeout=CATALOG_TTL + 3)
            <= CATALOG_TTL + 3
        )


async def test_a_worker_restarting_within_the_ttl_refuses_nothing(
    start_gateway, http, base_config, redis_url, tmp_path
):
    config = {**base_config, "task_default_queue": CATALOG_QUEUE, "stirfried_catalog_ttl": 30}
    worker_config = services.write_config(tmp_path / "restarting-worker.yaml", config)
    gateway = await start_gateway(task_default_queue=CATALOG_QUEUE)
    log = tmp_path / "worker.log"
    try:
        async with running_worker(worker_config, log):
            await wait_until_listed(http, gateway, "resize_image", True, timeout=5)
        # Between the stop and the restart (a deploy, systemd's Restart=): queued, not refused.
        status, body = await post_task(http, gateway, {"task_name": "resize_image", "args": ["a.png", 10]})
        assert status == 201, body
        async with running_worker(worker_config, log):
            info = await wait_for_state(http, gateway, body["data"])
    finally:
        # The other tests here expect no catalog worker for 30 s after it stopped.
        with contextlib.closing(redis.Redis.from_url(redis_url)) as client:
            client.zrem(protocol.CATALOG_WORKERS_KEY, f"{CATALOG_QUEUE}@{socket.gethostname()}")
    assert info["state"] == "SUCCESS", info


async def test_a_task_no_live_worker_serves_is_refused_at_once(gateway, http, connect):
    status, body = await post_task(http, gateway, {"task_name": "resize_image", "args": ["a.png", 10]})
    assert (status, body) == (404, {"status": "failed", "data": "no live worker serves task 'resize_image'"})

    chained = {"task_name": "add", "args": [1, 2], "chain": [{"task_name": "no_such_task"}]}
    status, body = await post_task(http, gateway, chained)
    assert (status, body["data"]) == (404, "no live worker serves task 'no_such_task'")

    client = await connect(gateway)
    reply = await client.call("send_task", {"task_name": "no_such_task"})
    assert reply == {"status": "failed", "data": "no live worker serves task 'no_such_task'"}


async def test_with_an_empty_allowlist_celerys_built_in_tasks_are_refused(gateway, http):
    status, body = await post_task(http, gateway, {"task_name": "celery.backend_cleanup"})
    assert status == 403
    assert "built-in" in body["data"]


async def test_refusing_unserved_tasks_can_be_switched_off(start_gateway, http):
    """For fleets whose workers cannot announce (the Stirfried 0.7.0 library): as in 0.7.0,
    the name is accepted and the worker reports NotRegistered."""
    gateway = await start_gateway(
        stirfried_refuse_unserved_tasks=False, stirfried_available_tasks=["legacy_task"]
    )
    status, _ = await post_task(http, gateway, {"task_name": "legacy_task"})
    assert status == 201
    tasks = await catalog(http, gateway)
    assert tasks["legacy_task"]["workers"] == 0


async def test_the_catalog_shows_a_token_holder_only_the_tasks_it_may_schedule(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=SECRET)
    token = Authenticator(SECRET, anonymous=False).mint("alice", ["add", "no_such_task"])

    tasks = await catalog(http, gateway, headers={"Authorization": f"Bearer {token}"})
    assert list(tasks) == ["add"]

    client = await connect(gateway, auth={"token": token})
    reply = await client.call("list_tasks")
    assert [entry["name"] for entry in reply["data"]] == ["add"]


async def test_the_allowlist_narrows_the_catalog(start_gateway, http):
    gateway = await start_gateway(stirfried_available_tasks=["add", "progress"])
    assert sorted(await catalog(http, gateway)) == ["add", "progress"]
