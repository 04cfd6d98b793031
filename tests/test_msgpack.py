"""Binary data: msgpack Socket.IO clients and msgpack Celery messages carry real bytes."""

from __future__ import annotations

from stirfried import protocol
from tests.helpers import post_task

PAYLOAD = bytes(range(256)) * 4


async def test_bytes_round_trip_client_worker_client_with_msgpack(start_gateway, connect):
    gateway = await start_gateway(
        socketio_serializer="msgpack", task_serializer="msgpack", result_serializer="msgpack"
    )
    client = await connect(gateway, serializer="msgpack")

    task_id = await client.send_task({"task_name": "reverse_bytes", "args": [PAYLOAD]})

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)
    assert success["retval"] == PAYLOAD[::-1]
    info = await client.call("task_info", task_id)
    assert info == {"id": task_id, "state": "SUCCESS", "result": PAYLOAD[::-1]}


async def test_arguments_the_serializer_cannot_encode_are_a_400(start_gateway, http):
    gateway = await start_gateway(task_serializer="msgpack", result_serializer="msgpack")

    status, body = await post_task(http, gateway, {"task_name": "add", "args": [2**64, 1]})

    assert status == 400
    assert body["status"] == "failed" and "cannot be serialized" in body["data"]
