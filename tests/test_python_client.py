"""``stirfried.client`` against the real gateway and workers."""

from __future__ import annotations

import asyncio

import pytest

from stirfried.client import (
    Progress,
    RequestFailed,
    StirfriedClient,
    StirfriedError,
    SyncStirfriedClient,
    TaskFailed,
    TaskTimeout,
)
from tests import services


@pytest.fixture
async def client(gateway):
    async with StirfriedClient(str(gateway.make_url("/")), timeout=15) as client:
        yield client


async def test_run_returns_the_result(client):
    assert await client.run("add", 2, 40) == 42


async def test_progress_callbacks_arrive_in_order_before_the_result(client):
    seen: list[Progress] = []

    result = await client.run("progress", 4, on_progress=seen.append)

    assert result == 4
    assert [(p.current, p.total, p.info) for p in seen] == [
        (step, 4, {"message": f"step {step}"}) for step in range(1, 5)
    ]


async def test_async_progress_callbacks_are_awaited(client):
    seen: list[int] = []

    async def record(progress: Progress) -> None:
        await asyncio.sleep(0)
        seen.append(progress.current)

    await client.run("progress", 3, on_progress=record)

    assert seen == [1, 2, 3]


async def test_failure_raises_with_the_tasks_error_when_the_gateway_shares_it(start_gateway):
    gateway = await start_gateway(stirfried_error_info=True)
    async with StirfriedClient(str(gateway.make_url("/"))) as client:
        with pytest.raises(TaskFailed) as caught:
            await client.run("fail", "disk full")

    assert caught.value.error == "ValueError: disk full"
    assert "disk full" in str(caught.value)
    assert "Traceback" in (caught.value.einfo or "")


async def test_failure_without_error_info_still_raises(client):
    with pytest.raises(TaskFailed, match="failed: no details"):
        await client.run("fail", "secret")


async def test_info_and_revoke(client):
    task_id = await client.schedule("add", 1, 2)
    await client.revoke("never-scheduled")

    for _ in range(100):
        info = await client.info(task_id)
        if info.state == "SUCCESS":
            break
        await asyncio.sleep(0.05)

    assert (info.id, info.state, info.result) == (task_id, "SUCCESS", 3)


async def test_a_task_that_outlives_the_timeout_raises_a_clear_error(client):
    with pytest.raises(TaskTimeout, match=r"task sleep \(.*\) did not finish within 0.5 s"):
        await client.run("sleep", 3, timeout=0.5)


async def test_rejected_request_raises_with_the_gateways_message(start_gateway):
    gateway = await start_gateway(stirfried_available_tasks=["add"])
    async with StirfriedClient(str(gateway.make_url("/"))) as client:
        with pytest.raises(RequestFailed, match="task 'fail' is not available"):
            await client.run("fail", "x")


async def test_unreachable_gateway_raises_naming_the_url():
    url = f"http://127.0.0.1:{services.free_port()}"
    with pytest.raises(StirfriedError, match=f"cannot connect to {url}"):
        async with StirfriedClient(url, timeout=2):
            pass


async def test_sync_client_runs_tasks_from_plain_code(gateway):
    url = str(gateway.make_url("/"))

    def script() -> tuple[int, list[int]]:
        seen: list[int] = []
        with SyncStirfriedClient(url) as client:
            result = client.run("progress", 2, on_progress=lambda p: seen.append(p.current))
        return result, seen

    assert await asyncio.to_thread(script) == (2, [1, 2])


async def test_run_survives_a_dropped_connection_without_losing_progress(gateway, client):
    from stirfried.server.app_keys import SOCKETIO
    from stirfried.server.session_guard import drop_transport

    seen: list[int] = []
    sio = gateway.app[SOCKETIO]
    dropped = asyncio.Event()

    async def on_progress(progress: Progress) -> None:
        seen.append(progress.current)
        if progress.current == 5:
            for socket in list(sio.eio.sockets.values()):
                await drop_transport(sio.eio, socket)
            dropped.set()

    result = await client.run("slow_progress", 40, 0.02, on_progress=on_progress, timeout=30)

    assert dropped.is_set()
    assert result == 40
    assert seen == list(range(1, 41))


async def test_follow_waits_for_a_task_scheduled_over_http(gateway, client, http):
    from tests.helpers import post_task

    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [3]})
    seen: list[int] = []

    assert await client.follow(body["data"], body["token"], on_progress=lambda p: seen.append(p.current)) == 3
    assert seen == [1, 2, 3]
    with pytest.raises(RequestFailed, match="token"):
        await client.follow(body["data"], "not-the-token")


async def test_a_task_name_no_worker_serves_is_refused_at_once(client):
    with pytest.raises(RequestFailed, match=r"no live worker serves task 'tasks\.no_such_task'"):
        await client.run("tasks.no_such_task", timeout=14)


@pytest.fixture
async def unserved_client(start_gateway):
    """A client of a gateway that lets unserved names through (workers that cannot announce)."""
    gateway = await start_gateway(stirfried_refuse_unserved_tasks=False)
    async with StirfriedClient(str(gateway.make_url("/")), timeout=15) as client:
        yield client


async def test_without_the_catalog_an_unknown_name_fails_at_once_naming_not_registered(unserved_client):
    client = unserved_client
    started = asyncio.get_running_loop().time()

    with pytest.raises(TaskFailed) as caught:
        await client.run("tasks.no_such_task", timeout=14)

    assert asyncio.get_running_loop().time() - started < 10  # not the timeout
    assert caught.value.task_name == "tasks.no_such_task"
    assert caught.value.error is not None and caught.value.error.startswith(
        "NotRegistered: 'tasks.no_such_task'"
    )
    assert "NotRegistered" in str(caught.value)


async def test_follow_names_the_task_of_an_unknown_name(start_gateway, http):
    from tests.helpers import post_task

    gateway = await start_gateway(stirfried_refuse_unserved_tasks=False)
    status, body = await post_task(http, gateway, {"task_name": "tasks.missing"})
    assert status == 201

    async with StirfriedClient(str(gateway.make_url("/")), timeout=15) as client:
        with pytest.raises(TaskFailed, match=r"task tasks\.missing \(") as caught:
            await client.follow(body["data"], body["token"], timeout=14)

    assert caught.value.task_name == "tasks.missing"
