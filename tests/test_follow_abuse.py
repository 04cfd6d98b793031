"""What a client that follows tasks cannot make the gateway do: replay for free, hold
channels or connection slots it no longer uses, or leave a stream that never ends.

Each test here failed against the gateway before the fix it describes (found by
attacking the per-task event path of issue 14).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from stirfried import protocol
from stirfried.server.app_keys import ACCESS, SUBSCRIPTIONS
from stirfried.server.errors import RateLimited
from stirfried.server.limits import REPLAYED_EVENT_COST
from stirfried.server.task_channels import LEAVE_DELAY
from tests.helpers import post_task, url_of, wait_for_state

# A task with this many progress events costs more to replay than the burst below.
STEPS = 600
BURST = 10


@pytest.fixture
async def valkey(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def subscribers(client: redis.asyncio.Redis, task_id: str) -> int:
    [(_, count)] = await client.pubsub_numsub(protocol.task_channel(task_id))
    return int(count)


async def test_an_sse_replay_is_charged_for_the_events_it_sends(start_gateway, http):
    assert STEPS * REPLAYED_EVENT_COST > BURST
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=BURST)
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [STEPS]})
    await wait_for_state(http, gateway, body["data"])
    events = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")

    async with http.get(events) as replay:
        assert replay.status == 200 and (await replay.text()).count("event: on_progress") == STEPS
    async with http.get(events) as again:
        refused = await again.json()

    assert again.status == 429 and "too many requests" in refused["data"]


async def test_a_socketio_replay_is_charged_for_the_events_it_sends(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=BURST)
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [STEPS]})
    await wait_for_state(http, gateway, body["data"])
    client = await connect(gateway)
    subscription = {"task_id": body["data"], "token": body["token"]}

    first = await client.call("subscribe_task", subscription)
    await client.call("unsubscribe_task", body["data"])
    second = await client.call("subscribe_task", subscription)

    assert first["status"] == "success"
    assert second["status"] == "failed" and "too many requests" in second["data"]


async def test_of_replays_read_side_by_side_only_the_first_is_sent(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=BURST)
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [STEPS]})
    await wait_for_state(http, gateway, body["data"])
    clients = [await connect(gateway) for _ in range(20)]  # one address: one budget
    subscription = {"task_id": body["data"], "token": body["token"]}

    replies = await asyncio.gather(*(client.call("subscribe_task", subscription) for client in clients))

    # All 20 fit the budget when they arrive (0.2 each); each replay costs 12.
    assert [reply["status"] for reply in replies].count("success") == 1, replies
    assert all("too many requests" in reply["data"] for reply in replies if reply["status"] == "failed")
    assert sum(1 for client in clients if client.events_for(body["data"])) == 1


async def test_a_resume_of_a_few_events_costs_almost_nothing(start_gateway, http):
    gateway = await start_gateway(stirfried_rate_limit=1, stirfried_rate_burst=BURST)
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [STEPS]})
    await wait_for_state(http, gateway, body["data"])
    events = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")

    statuses = []
    for _ in range(5):  # an EventSource reconnecting near the end, again and again
        async with http.get(events, headers={"Last-Event-ID": str(STEPS)}) as resumed:
            statuses.append(resumed.status)
            await resumed.read()

    assert statuses == [200] * 5


async def test_a_refused_resume_keeps_the_subscription_the_client_had(gateway, http, connect):
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [12, 0.2]})
    client = await connect(gateway)
    await client.call("subscribe_task", {"task_id": body["data"], "token": body["token"]})
    await client.wait_for(lambda _: len(client.events_for(body["data"])) >= 3)
    subscriptions = gateway.app[SUBSCRIPTIONS]

    def in_debt(events: int) -> None:  # as when another replay read beside it took the budget
        raise RateLimited("too many requests")

    # A resume from the start, refused once its log was read (what a lost race for the budget does).
    with subscriptions.subscribing(client.sid, body["data"]) as arrival:
        with pytest.raises(RateLimited):
            await subscriptions.subscribe(client.sid, body["data"], arrival, 0, None, in_debt)

    await client.wait_for_event(protocol.ON_RETURN, body["data"])  # live events kept coming


async def test_following_a_finished_task_holds_no_channel(gateway, http, connect, valkey):
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [1, 2]})
    await wait_for_state(http, gateway, body["data"])
    client = await connect(gateway)

    reply = await client.call("subscribe_task", {"task_id": body["data"], "token": body["token"]})
    await asyncio.sleep(LEAVE_DELAY + 0.5)

    assert reply["status"] == "success"
    assert protocol.ON_RETURN in [name for name, _ in client.events_for(body["data"])]
    assert await subscribers(valkey, body["data"]) == 0  # the client is still connected


async def test_a_stream_resumed_past_the_last_event_ends_with_the_task(gateway, http):
    _, body = await post_task(http, gateway, {"task_name": "slow_progress", "args": [4, 0.3]})
    events = url_of(gateway, f"/task/{body['data']}/events?token={body['token']}")

    async with asyncio.timeout(15):  # the stream used to stay open, sending keepalives
        async with http.get(events, params={"after": str(2**63 - 1)}) as response:
            text = await response.text()

    assert response.status == 200 and "event:" not in text


async def test_a_stream_of_a_task_without_events_starts_at_once(gateway, http):
    task_id = "no-events-yet"  # as a task still queued behind others
    token = gateway.app[ACCESS].issue_token(task_id)
    async with asyncio.timeout(5):  # not at the first keepalive, 15 s later
        async with http.get(url_of(gateway, f"/task/{task_id}/events?token={token}")) as response:
            assert response.status == 200
            assert await response.content.readline() == b": keepalive\n"


async def test_a_stream_left_before_any_event_frees_its_slot_at_once_and_is_no_error(
    start_gateway, http, valkey, caplog
):
    gateway = await start_gateway(stirfried_max_connections_per_ip=1)
    task_id = "queued-behind-others"
    path = f"/task/{task_id}/events?token={gateway.app[ACCESS].issue_token(task_id)}"
    caplog.clear()  # what the start logged

    # Gone right after asking, and gone after the stream's first line.
    _, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
    await writer.drain()
    writer.close()
    async with http.get(url_of(gateway, path)) as response:
        await response.content.readline()
    await asyncio.sleep(0.3)

    async with http.get(url_of(gateway, path)) as after:  # refused for 15 s before
        assert after.status == 200
    await asyncio.sleep(LEAVE_DELAY + 0.5)
    assert task_id not in gateway.app[SUBSCRIPTIONS]._relay._streams
    assert await subscribers(valkey, task_id) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("stirfried")]
    assert errors == []
