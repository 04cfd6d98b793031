"""``stirfried_header_task_map``: headers injected into kwargs, never spoofable."""

from __future__ import annotations

import pytest

from stirfried import protocol
from tests.helpers import post_task, wait_for_state

HEADER_MAP = {"echo_kwargs": {"X-User": "user", "Date": "date"}}


@pytest.fixture
async def mapped_gateway(start_gateway):
    return await start_gateway(stirfried_header_task_map=HEADER_MAP)


async def test_http_header_is_injected_into_the_mapped_kwarg(mapped_gateway, http):
    _, body = await post_task(
        http, mapped_gateway, {"task_name": "echo_kwargs", "kwargs": {"other": 1}},
        headers={"x-user": "alice", "Date": "Tue, 24 Nov 2026 10:00:00 GMT"},
    )  # fmt: skip

    info = await wait_for_state(http, mapped_gateway, body["data"])

    assert info["result"] == {
        "room": "NO_EMIT",
        "other": 1,
        "user": "alice",
        "date": "Tue, 24 Nov 2026 10:00:00 GMT",
    }


async def test_http_client_cannot_spoof_a_mapped_kwarg(mapped_gateway, http):
    _, body = await post_task(
        http, mapped_gateway, {"task_name": "echo_kwargs", "kwargs": {"user": "mallory", "date": "x"}}
    )

    info = await wait_for_state(http, mapped_gateway, body["data"])

    assert info["result"] == {"room": "NO_EMIT"}


async def test_spoofed_kwarg_is_replaced_by_the_header_value(mapped_gateway, http):
    _, body = await post_task(
        http, mapped_gateway, {"task_name": "echo_kwargs", "kwargs": {"user": "mallory"}},
        headers={"X-User": "alice"},
    )  # fmt: skip

    info = await wait_for_state(http, mapped_gateway, body["data"])

    assert info["result"]["user"] == "alice"


async def test_socketio_connect_header_is_injected(mapped_gateway, connect):
    client = await connect(mapped_gateway, headers={"X-User": "bob"})
    task_id = await client.send_task({"task_name": "echo_kwargs", "kwargs": {"user": "mallory"}})

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)

    assert success["retval"] == {"room": client.sid, "user": "bob"}


async def test_socketio_client_without_the_header_cannot_spoof(mapped_gateway, connect):
    client = await connect(mapped_gateway)
    task_id = await client.send_task({"task_name": "echo_kwargs", "kwargs": {"user": "mallory"}})

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)

    assert success["retval"] == {"room": client.sid}


async def test_tasks_outside_the_map_keep_their_kwargs(mapped_gateway, connect):
    client = await connect(mapped_gateway, headers={"X-User": "bob"})
    task_id = await client.send_task({"task_name": "add", "kwargs": {"x": 1, "y": 2}})

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)

    assert success["retval"] == 3
