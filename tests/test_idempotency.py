"""Idempotent submits (issue 15): one key, one task, however often and however concurrently
a client retries."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio

from stirfried.server.caller import Authenticator
from tests.helpers import post_task, url_of, wait_for_state


async def runs(redis_url: str, key: str) -> int:
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        return int(await client.get(f"stirfried-tests:runs:{key}") or 0)


async def test_a_retried_submit_with_the_same_key_runs_once(gateway, http, redis_url, unique):
    task = {"task_name": "count_run", "args": [unique]}
    headers = {"Idempotency-Key": f"order-{unique}"}

    status, first = await post_task(http, gateway, task, headers=headers)
    assert status == 201
    async with http.post(url_of(gateway, "/task"), json=task, headers=headers) as response:
        assert response.status == 201
        assert response.headers["Idempotent-Replayed"] == "true"
        again = await response.json()

    assert again == first
    assert (await wait_for_state(http, gateway, first["data"]))["state"] == "SUCCESS"
    await asyncio.sleep(0.5)  # a second run, had there been one, would have counted by now
    assert await runs(redis_url, unique) == 1


async def test_concurrent_submits_with_one_key_publish_one_task(gateway, http, redis_url, unique):
    task = {"task_name": "count_run", "args": [unique], "idempotency_key": f"burst-{unique}"}

    replies = await asyncio.gather(*(post_task(http, gateway, task) for _ in range(8)))

    assert {status for status, _ in replies} == {201}
    assert len({body["data"] for _, body in replies}) == 1
    await wait_for_state(http, gateway, replies[0][1]["data"])
    await asyncio.sleep(0.5)
    assert await runs(redis_url, unique) == 1


async def test_a_different_task_under_a_used_key_is_a_conflict(gateway, http, unique):
    headers = {"Idempotency-Key": f"k-{unique}"}
    status, _ = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]}, headers=headers)
    assert status == 201

    status, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 3]}, headers=headers)

    assert status == 409
    assert body == {
        "status": "failed",
        "data": f"idempotency key 'k-{unique}' was used for a different task object; use a new key",
    }


async def test_keys_belong_to_their_caller(start_gateway, http, unique):
    """The same key from two token subjects is two submissions."""
    secret = "idempotency-test-secret-0123456789abcdef"
    gateway = await start_gateway(stirfried_anonymous=False, stirfried_auth_secret=secret)
    minter = Authenticator(secret, anonymous=False)
    task: dict[str, Any] = {"task_name": "add", "args": [1, 2], "idempotency_key": unique}
    ids = set()
    for subject in ("alice", "bob"):
        status, body = await post_task(
            http, gateway, task, headers={"Authorization": f"Bearer {minter.mint(subject, ['add'])}"}
        )
        assert status == 201
        ids.add(body["data"])
    assert len(ids) == 2


async def test_a_socketio_retry_after_a_reconnect_returns_the_task_and_its_events(
    gateway, connect, redis_url, unique
):
    task = {"task_name": "count_run", "args": [unique], "idempotency_key": f"sio-{unique}"}
    first = await connect(gateway)
    reply = await first.call("send_task", task)
    assert reply["status"] == "success" and "replayed" not in reply
    await first.disconnect()

    retry = await connect(gateway)
    again = await retry.call("send_task", task)

    assert again == {**reply, "replayed": True}
    # The retrying client follows the first task: it gets its result.
    assert (await retry.wait_for_event("on_success", reply["data"]))["retval"] == 1
    assert await runs(redis_url, unique) == 1


async def test_a_bad_key_is_refused(gateway, http):
    status, body = await post_task(
        http, gateway, {"task_name": "add"}, headers={"Idempotency-Key": "has space"}
    )
    assert (status, body["data"]) == (
        400,
        "the Idempotency-Key header must be 1 to 255 visible ASCII characters (no spaces)",
    )
    status, body = await post_task(
        http, gateway, {"task_name": "add", "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert (status, body["data"]) == (
        400,
        "the Idempotency-Key header and the body's 'idempotency_key' differ",
    )
