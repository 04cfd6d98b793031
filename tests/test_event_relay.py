"""The relay from Redis to clients: in place before the first client connects, on both paths.

Task events of this library's workers travel on each task's own channel
(``stirfried:{id}:live``); python-socketio's ``socketio`` channel still carries
what Stirfried 0.7.0's workers publish, and emits between gateways.
"""

from __future__ import annotations

import asyncio
import json

import redis.asyncio
import socketio

from stirfried import protocol
from stirfried.server.app_keys import CHANNELS, SOCKETIO


def stirfried_070_worker_message(event: str, payload: dict[str, object], room: str) -> str:
    """Byte for byte what a worker on the Stirfried 0.7.0 library publishes (its
    ``socketio.RedisManager(url, write_only=True).emit(event, payload, room=room)``)."""
    return json.dumps(
        {
            "method": "emit",
            "event": event,
            "data": payload,
            "namespace": "/",
            "room": room,
            "skip_sid": None,
            "callback": None,
            "host_id": "0123456789abcdef0123456789abcdef",
        }
    )


async def test_a_stirfried_070_worker_event_published_right_after_the_first_connect_is_delivered(
    start_gateway, connect, redis_url, unique
):
    publisher = redis.asyncio.Redis.from_url(redis_url)
    try:
        for attempt in range(5):
            gateway = await start_gateway()
            client = await connect(gateway)
            task_id = f"relay-{unique}-{attempt}"
            payload = {"task_id": task_id, "task_name": "x", "retval": 1}

            message = stirfried_070_worker_message("on_success", payload, client.sid)
            assert await publisher.publish(protocol.SOCKETIO_CHANNEL, message) >= 1

            await client.wait_for(lambda events: len(events) == 1, timeout=5)
            assert client.events == [("on_success", payload)]
    finally:
        await publisher.aclose()


async def test_gateway_without_clients_already_listens(start_gateway):
    gateway = await start_gateway()
    sio = gateway.app[SOCKETIO]
    assert isinstance(sio.manager, socketio.AsyncRedisManager)
    assert sio.manager.pubsub.subscribed
    channels = gateway.app[CHANNELS]
    assert channels.shards == 1
    assert channels.following() == frozenset()


async def test_the_scheduling_client_follows_its_task_until_the_final_event(
    start_gateway, connect, event_redis
):
    gateway = await start_gateway(**event_redis)
    channels = gateway.app[CHANNELS]
    client = await connect(gateway)

    task_id = await client.send_task({"task_name": "add", "args": [1, 2]})
    # Following from before the task was published, until its final event passed.
    assert task_id in channels.following() or client.events_for(task_id)
    await client.wait_for_event(protocol.ON_RETURN, task_id)
    await asyncio.sleep(0.2)

    assert task_id not in channels.following()
    assert [name for name, _ in client.events_for(task_id)] == [protocol.ON_SUCCESS, protocol.ON_RETURN]
