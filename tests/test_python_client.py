"""``stirfried.client`` against the real gateway and workers."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stirfried.client import (
    Progress,
    RequestFailed,
    StirfriedClient,
    StirfriedError,
    SyncStirfriedClient,
    TaskFailed,
    TaskRevoked,
    TaskTimeout,
    new_session_key,
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


async def test_tasks_lists_what_the_workers_serve_with_each_ones_arguments(client):
    catalog = await client.tasks()

    names = [task.name for task in catalog]
    assert names == sorted(names)
    assert {"add", "progress", "send_email"} <= set(names)
    assert not [name for name in names if name.startswith("celery.")]
    email = next(task for task in catalog if task.name == "send_email")
    assert email.workers >= 1
    assert "address: str" in email.signature
    assert email.parameters["properties"]["address"]["type"] == "string"
    assert email.parameters["required"] == ["address"]
    assert "room" not in email.parameters["properties"]


async def test_my_tasks_finds_this_sessions_tasks_from_a_later_connection(gateway):
    url = str(gateway.make_url("/"))
    session = new_session_key()
    async with StirfriedClient(url, session=session, timeout=15) as first:
        scheduled = [await first.schedule("add", step, 1) for step in range(3)]
        await first.run("add", 0, 0)  # and the others have run by now, on a four-process worker
    async with StirfriedClient(url, session=session, timeout=15) as later:
        page = await later.my_tasks(limit=2)
        rest = await later.my_tasks(limit=2, cursor=page.next)
    async with StirfriedClient(url, session=new_session_key()) as stranger:
        assert (await stranger.my_tasks()).tasks == ()

    mine = [*page.tasks, *rest.tasks]
    assert [task.id for task in mine][1:] == scheduled[::-1]  # newest first, the run() first of all
    assert all(task.name == "add" and task.token for task in mine)
    assert mine[-1].scheduled is not None and mine[-1].finished is not None
    assert mine[-1].state == "SUCCESS"
    assert rest.next is None


async def test_a_session_key_of_the_wrong_shape_is_refused_before_connecting():
    with pytest.raises(ValueError, match="22 to 128 characters"):
        StirfriedClient("http://127.0.0.1:1", session="short")


async def test_a_retried_submit_with_the_same_idempotency_key_runs_the_task_once(client):
    key = f"order-{new_session_key()}"

    first = await client.schedule("add", 2, 3, idempotency_key=key)
    assert await client.run("add", 2, 3, idempotency_key=key) == 5  # waits for the first one
    assert await client.schedule("add", 2, 3, idempotency_key=key) == first
    with pytest.raises(RequestFailed):
        await client.schedule("add", 2, 4, idempotency_key=key)


async def test_a_countdown_delays_the_task_where_the_gateway_allows_it(start_gateway):
    gateway = await start_gateway(stirfried_task_options=["countdown"])
    async with StirfriedClient(str(gateway.make_url("/")), timeout=15) as client:
        started = asyncio.get_running_loop().time()
        assert await client.run("add", 1, 2, countdown=1.5) == 3
        assert asyncio.get_running_loop().time() - started >= 1.4
        with pytest.raises(RequestFailed, match="priority"):
            await client.schedule("add", 1, 2, priority=5)


async def test_an_expired_task_never_runs_and_run_raises_task_revoked(start_gateway):
    gateway = await start_gateway(
        stirfried_task_options=["countdown", "expires"], stirfried_celery_events=True
    )
    async with StirfriedClient(str(gateway.make_url("/")), timeout=15) as client:
        with pytest.raises(TaskRevoked) as caught:
            await client.run("add", 1, 2, countdown=1, expires=0.5)

    assert caught.value.expired
    assert isinstance(caught.value, TaskFailed)


async def test_terminate_stops_a_running_task_and_its_follower_gets_task_revoked(start_gateway):
    gateway = await start_gateway(stirfried_terminate=True, stirfried_celery_events=True)
    async with StirfriedClient(str(gateway.make_url("/")), timeout=15) as client:
        task_id = await client.schedule("slow_progress", 200, 0.1)
        running = asyncio.Event()
        follower = asyncio.create_task(
            client.follow(task_id, on_progress=lambda _: running.set(), timeout=15)
        )
        await asyncio.wait_for(running.wait(), 10)

        await client.revoke(task_id, terminate=True, signal="SIGKILL")

        with pytest.raises(TaskRevoked, match="terminated") as caught:
            await follower
        assert caught.value.terminated
        assert (await client.info(task_id)).state == "REVOKED"


async def test_terminate_is_refused_where_the_gateway_does_not_allow_it(client):
    task_id = await client.schedule("add", 1, 1)
    with pytest.raises(RequestFailed):
        await client.revoke(task_id, terminate=True)


async def test_info_of_an_id_the_gateway_never_issued_is_refused(client):
    with pytest.raises(RequestFailed):
        await client.info(str(uuid.uuid4()))


async def test_the_sync_client_lists_tasks_and_my_tasks(gateway):
    url = str(gateway.make_url("/"))

    def script() -> tuple[str, list[str], list[str]]:
        with SyncStirfriedClient(url, session=new_session_key()) as client:
            task_id = client.schedule("add", 1, 1)
            return (
                task_id,
                [task.name for task in client.tasks()],
                [task.id for task in client.my_tasks().tasks],
            )

    task_id, catalog, mine = await asyncio.to_thread(script)
    assert "add" in catalog
    assert mine == [task_id]
