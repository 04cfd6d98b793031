"""My tasks (issue 15): a caller finds its recent tasks again, e.g. after a page reload."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
import socketio

from stirfried.server.caller import Authenticator
from tests.helpers import post_task, url_of

SECRET = "my-tasks-test-secret-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def mine(http: Any, gateway: Any, query: str = "", **options: Any) -> tuple[int, Any]:
    async with http.get(url_of(gateway, "/tasks/mine" + query), **options) as response:
        return response.status, await response.json()


async def test_a_token_holder_lists_its_tasks_newest_first_with_states_and_pages(start_gateway, http, unique):
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=SECRET)
    minter = Authenticator(SECRET, anonymous=False)
    alice = bearer(minter.mint(f"alice-{unique}", ["add", "sleep"]))
    ids, tokens = [], []
    for number in range(3):
        status, body = await post_task(
            http, gateway, {"task_name": "add", "args": [number, 1]}, headers=alice
        )
        assert status == 201
        ids.append(body["data"])
        tokens.append(body["token"])
    await post_task(
        http,
        gateway,
        {"task_name": "add", "args": [9, 9]},
        headers=bearer(minter.mint(f"bob-{unique}", ["add"])),
    )
    for task_id, token in zip(ids, tokens, strict=True):
        assert (await wait_for_state_as(http, gateway, f"{task_id}?token={token}", alice))[
            "state"
        ] == "SUCCESS"

    status, page = await mine(http, gateway, "?limit=2", headers=alice)
    assert status == 200
    assert [task["id"] for task in page["data"]] == [ids[2], ids[1]]
    first = page["data"][0]
    assert first["name"] == "add" and first["state"] == "SUCCESS"
    assert first["scheduled"] <= first["started"] <= first["finished"]
    assert page["next"] is not None

    status, rest = await mine(http, gateway, f"?limit=2&cursor={page['next']}", headers=alice)
    assert [task["id"] for task in rest["data"]] == [ids[0]]
    assert rest["next"] is None

    # Each entry's token opens the task's event stream.
    async with http.get(
        url_of(gateway, f"/task/{ids[0]}/events?token={rest['data'][0]['token']}")
    ) as response:
        assert response.status == 200
        assert b"event: on_success" in await response.read()


async def wait_for_state_as(http: Any, gateway: Any, task_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        async with http.get(url_of(gateway, f"/task/{task_id}"), headers=headers) as response:
            info: dict[str, Any] = await response.json()
        if info.get("state") in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.05)


async def test_a_running_task_is_listed_as_started_and_a_quick_one_keeps_its_start_time(
    start_gateway, http, unique
):
    """The worker writes a start from a background thread, a moment late; a task that ends
    before that moment carries its start in its final event."""
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=SECRET)
    alice = bearer(Authenticator(SECRET, anonymous=False).mint(f"alice-{unique}", ["add", "sleep"]))
    status, body = await post_task(http, gateway, {"task_name": "sleep", "args": [2]}, headers=alice)
    assert status == 201
    deadline = time.monotonic() + 10
    while True:
        _, page = await mine(http, gateway, headers=alice)
        listed = page["data"][0]
        if listed["state"] == "STARTED" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert listed["id"] == body["data"] and listed["state"] == "STARTED"
    assert listed["scheduled"] <= listed["started"] and listed["finished"] is None

    for number in range(20):  # ends within milliseconds, before its start is written apart
        status, body = await post_task(
            http, gateway, {"task_name": "add", "args": [number, 1]}, headers=alice
        )
        deadline = time.monotonic() + 10
        while True:
            _, page = await mine(http, gateway, "?limit=1", headers=alice)
            [quick] = page["data"]
            if quick["finished"] is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        assert quick["id"] == body["data"] and quick["state"] == "SUCCESS"
        assert quick["scheduled"] <= quick["started"] <= quick["finished"]


async def test_follow_tags_list_the_tasks_of_those_tags(start_gateway, http, unique):
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=SECRET)
    minter = Authenticator(SECRET, anonymous=False)
    status, body = await post_task(
        http,
        gateway,
        {"task_name": "add", "args": [1, 1]},
        headers=bearer(minter.mint(f"carol-{unique}", ["add"])),
    )
    assert status == 201
    support = bearer(minter.mint("support", follow_tags=[f"subject:carol-{unique}"]))

    status, page = await mine(http, gateway, headers=support)

    assert [task["id"] for task in page["data"]] == [body["data"]]


async def test_an_anonymous_browser_tab_finds_its_tasks_after_a_reload(gateway, connect):
    session = secrets.token_urlsafe(32)
    tab = await connect(gateway, auth={"session": session})
    task_id = await tab.send_task({"task_name": "sleep", "args": [0.2]})
    await tab.disconnect()

    reloaded = await connect(gateway, auth={"session": session})
    reply = await reloaded.call("list_my_tasks", {"limit": 5})

    assert reply["status"] == "success"
    assert [task["id"] for task in reply["data"]] == [task_id]
    # It re-follows the task with the listed token, and gets its result.
    assert (await reloaded.call("subscribe_task", {"task_id": task_id, "token": reply["data"][0]["token"]}))[
        "status"
    ] == "success"
    assert (await reloaded.wait_for_event("on_success", task_id))["retval"] == 0.2

    stranger = await connect(gateway, auth={"session": secrets.token_urlsafe(32)})
    assert (await stranger.call("list_my_tasks"))["data"] == []
    no_key = await connect(gateway)
    assert (await no_key.call("list_my_tasks"))["data"] == []


async def test_anonymous_http_callers_cannot_list_tasks(gateway, http):
    status, body = await mine(http, gateway)
    assert status == 403
    assert "needs a token" in body["data"]


async def test_a_malformed_session_key_is_refused_at_connect(gateway):
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[object] = []
    client.on("connect_error", refusals.append)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                str(gateway.make_url("/")), auth={"session": "short"}, transports=["websocket"]
            )
    finally:
        await client.shutdown()
    assert refusals == [
        {"message": "auth 'session' must be 22 to 128 characters of A-Z, a-z, 0-9, '_' and '-'"}
    ]
