"""A gateway's task channel subscriptions: reserved ahead for tasks to come, left in batches after tasks end.

Run on one Valkey and on the three-node cluster (``event_redis``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio
import redis.asyncio.cluster

from stirfried import protocol
from stirfried.server.app_keys import CHANNELS
from stirfried.server.task_channels import LEAVE_DELAY, RESERVE_REFILL, TaskChannels

Publisher = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def events_url(event_redis: dict[str, Any], redis_url: str) -> tuple[str, bool]:
    return event_redis.get("stirfried_redis_url", redis_url), bool(event_redis.get("stirfried_redis_cluster"))


@pytest.fixture
async def publisher(events_url: tuple[str, bool]) -> AsyncIterator[Publisher]:
    url, cluster = events_url
    client: Publisher = (
        redis.asyncio.cluster.RedisCluster.from_url(url) if cluster else redis.asyncio.Redis.from_url(url)
    )
    yield client
    await client.aclose()


async def publish(client: Publisher, task_id: str, data: bytes) -> int:
    """What a worker's script does: the number of gateways subscribed that received it."""
    channel = protocol.task_channel(task_id)
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return int(await client.spublish(channel, data))
    return int(await client.publish(channel, data))


async def subscribers(client: Publisher, task_id: str) -> int:
    channel = protocol.task_channel(task_id)
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        [(_, count)] = await client.pubsub_shardnumsub(channel)
    else:
        [(_, count)] = await client.pubsub_numsub(channel)
    return int(count)


async def test_a_reserved_task_id_is_subscribed_before_anything_is_sent_for_it(
    events_url: tuple[str, bool], publisher: Publisher
) -> None:
    received: list[tuple[str, bytes]] = []

    async def on_message(task_id: str, data: bytes) -> None:
        received.append((task_id, data))

    channels = TaskChannels(*events_url, timeout=5)
    await channels.open(on_message)
    try:
        await until(lambda: len(channels.reserved()) >= RESERVE_REFILL)
        reserved = channels.reserved()
        [task_id] = channels.task_ids(1)
        assert task_id in reserved and task_id not in channels.reserved()

        # Published the moment the id is handed out: this gateway already receives it.
        assert await publish(publisher, task_id, b"first") == 1
        subscribed = await channels.follow_soon(task_id)
        assert subscribed.done() and subscribed.exception() is None
        await until(lambda: received)
        assert received == [(task_id, b"first")]
        assert channels.following() == frozenset({task_id})
        channels.unfollow(task_id)
    finally:
        await channels.close()


async def test_ids_beyond_the_reserve_are_new_and_the_reserve_refills(events_url: tuple[str, bool]) -> None:
    async def on_message(task_id: str, data: bytes) -> None:
        pass

    channels = TaskChannels(*events_url, timeout=5)
    await channels.open(on_message)
    try:
        await until(lambda: len(channels.reserved()) >= RESERVE_REFILL)
        reserved = channels.reserved()
        taken = channels.task_ids(len(reserved) + 3)
        assert len(set(taken)) == len(reserved) + 3
        assert set(taken) & reserved == reserved  # all of the reserve, then three new ids
        await until(lambda: len(channels.reserved()) >= RESERVE_REFILL)
        assert not channels.reserved() & set(taken)
    finally:
        await channels.close()


async def test_the_reserve_is_replaced_after_the_subscriber_connection_is_lost(redis_url: str) -> None:
    received: list[str] = []

    async def on_message(task_id: str, data: bytes) -> None:
        received.append(task_id)

    channels = TaskChannels(redis_url, False, timeout=5)
    await channels.open(on_message)
    admin = redis.asyncio.Redis.from_url(redis_url)
    try:
        await until(lambda: len(channels.reserved()) >= RESERVE_REFILL)
        before = channels.reserved()
        # Redis drops the subscriber (as a restart would): its subscriptions had a gap.
        await admin.client_kill_filter(_type="pubsub")
        await until(lambda: len(channels.reserved()) >= RESERVE_REFILL and not channels.reserved() & before)
        [task_id] = channels.task_ids(1)
        assert await publish(admin, task_id, b"after") == 1
        await until(lambda: received == [task_id])
    finally:
        await channels.close()
        await admin.aclose()


async def test_a_gateway_leaves_an_ended_tasks_channel_soon_after_its_final_event(
    start_gateway, connect, event_redis: dict[str, Any], publisher: Publisher
) -> None:
    gateway = await start_gateway(**event_redis)
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "add", "args": [1, 2]})
    await client.wait_for_event(protocol.ON_RETURN, task_id)
    assert task_id not in gateway.app[CHANNELS].following()

    deadline = asyncio.get_running_loop().time() + LEAVE_DELAY + 2
    while await subscribers(publisher, task_id):
        assert asyncio.get_running_loop().time() < deadline, "the gateway still listens on the channel"
        await asyncio.sleep(0.05)
