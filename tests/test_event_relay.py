"""The relay from Redis to clients is in place before the first client connects."""

from __future__ import annotations

import asyncio

import socketio

from stirfried.emitter import TaskEventEmitter
from stirfried.server.app_keys import SOCKETIO
from tests.helpers import seed_payload


async def test_event_published_right_after_the_first_connect_is_delivered(
    start_gateway, connect, redis_url, unique
):
    emitter = TaskEventEmitter(redis_url, log_max_length=10, log_ttl=60)
    for attempt in range(5):
        gateway = await start_gateway()
        client = await connect(gateway)
        task_id = f"relay-{unique}-{attempt}"

        # What a very fast task does: publish the moment the client's task exists.
        # (In a thread: the worker's emitter is blocking by design.)
        payload = {"task_id": task_id, "task_name": "x", "retval": 1}
        await asyncio.to_thread(emitter.emit, "on_success", payload, task_id, [client.sid])

        await client.wait_for(lambda events: len(events) == 1, timeout=5)
        [(name, payload)] = client.events
        assert (name, seed_payload(payload)) == (
            "on_success",
            {"task_id": task_id, "task_name": "x", "retval": 1},
        )


async def test_gateway_without_clients_already_listens(start_gateway):
    gateway = await start_gateway()
    sio = gateway.app[SOCKETIO]
    assert isinstance(sio.manager, socketio.AsyncRedisManager)
    assert sio.manager.pubsub.subscribed
