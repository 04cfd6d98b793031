"""``GET /task/{id}/events``: Server-Sent Events with replay, Last-Event-ID resume and an end."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import ClientSession

from stirfried import protocol
from tests.helpers import post_task, url_of, wait_for_state


async def read_stream(
    http: ClientSession, url: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every SSE message until the server ends the stream (fails if it never does)."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with http.get(url, headers=headers or {}, timeout=aiohttp.ClientTimeout(total=30)) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if current:
                    messages.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = json.loads(value) if field == "data" else value
    return messages


async def test_a_running_task_streams_to_its_end_and_the_stream_closes(start_gateway, http, event_redis):
    gateway = await start_gateway(**event_redis)
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [10, 0.02]})
    url = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")

    messages = await read_stream(http, url)

    epoch = messages[0]["data"]["epoch"]
    assert protocol.is_epoch(epoch)
    assert [m["id"] for m in messages] == [f"{epoch}:{n}" for n in range(1, 13)]
    assert [m["event"] for m in messages][-3:] == [
        protocol.ON_PROGRESS,
        protocol.ON_SUCCESS,
        protocol.ON_RETURN,
    ]
    assert messages[-2]["data"]["retval"] == 10


async def test_last_event_id_resumes_exactly_after_that_event(start_gateway, http, event_redis):
    gateway = await start_gateway(**event_redis)
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [6]})
    await wait_for_state(http, gateway, body["data"])
    url = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")

    everything = await read_stream(http, url)
    resumed = await read_stream(http, url, headers={"Last-Event-ID": "4"})
    as_sent = await read_stream(http, url, headers={"Last-Event-ID": everything[3]["id"]})

    assert [m["id"].split(":")[1] for m in resumed] == ["5", "6", "7", "8"]
    assert resumed == as_sent == everything[4:]


async def test_a_last_event_id_of_a_lost_log_replays_the_whole_new_one(gateway, http, redis_url):
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [2]})
    await wait_for_state(http, gateway, body["data"])
    url = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")
    everything = await read_stream(http, url)

    # As after a Redis restart that lost the log the client's ids came from.
    resumed = await read_stream(http, url, headers={"Last-Event-ID": "0123abcd:2"})

    assert [m["id"].split(":")[1] for m in resumed] == ["1", "2", "3", "4"]
    assert resumed == everything


async def test_the_stream_needs_the_tasks_token(gateway, http):
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    _, other = await post_task(http, gateway, {"task_name": "add", "args": [3, 4]})

    for query in ("", f"?token={other['token']}", "?token=nonsense"):
        async with http.get(url_of(gateway, f"/task/{body['data']}/events{query}")) as response:
            assert response.status == 403
            reply = await response.json()
            assert reply["status"] == "failed" and "token" in reply["data"]


async def test_a_bad_last_event_id_is_a_400(gateway, http):
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    url = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")
    async with http.get(url, headers={"Last-Event-ID": "yesterday"}) as response:
        assert response.status == 400
        assert "after" in (await response.json())["data"]


async def test_shutdown_ends_open_streams_promptly(start_gateway, http):
    gateway = await start_gateway()
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [100, 0.05]})
    url = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")
    reader = asyncio.create_task(read_stream(http, url))
    await asyncio.sleep(0.5)

    started = time.monotonic()
    await gateway.close()
    messages = await asyncio.wait_for(reader, 10)

    assert time.monotonic() - started < 3
    # Cut off mid-task: the client resumes elsewhere with Last-Event-ID.
    assert messages and messages[-1]["event"] == protocol.ON_PROGRESS
