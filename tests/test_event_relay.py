"""The relay from Redis to clients is in place before the first client connects."""

from __future__ import annotations

import socketio

from stirfried.emitter import TaskEventEmitter
from stirfried.server.app_keys import SOCKETIO


async def test_event_published_right_after_the_first_connect_is_delivered(start_gateway, connect, redis_url):
    emitter = TaskEventEmitter(redis_url)
    for attempt in range(5):
        gateway = await start_gateway()
        client = await connect(gateway)

        # What a very fast task does: publish the moment the client's task exists.
        emitter.emit("on_success", {"task_id": f"t{attempt}", "task_name": "x", "retval": 1}, client.sid)

        await client.wait_for(lambda events: len(events) == 1, timeout=5)
        assert client.events == [("on_success", {"task_id": f"t{attempt}", "task_name": "x", "retval": 1})]


async def test_gateway_without_clients_already_listens(start_gateway):
    gateway = await start_gateway()
    sio = gateway.app[SOCKETIO]
    assert isinstance(sio.manager, socketio.AsyncRedisManager)
    assert sio.manager.pubsub.subscribed
