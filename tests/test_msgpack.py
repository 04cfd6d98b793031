"""Binary data: msgpack Socket.IO clients and msgpack Celery messages carry real bytes."""

from __future__ import annotations

from stirfried import events

PAYLOAD = bytes(range(256)) * 4


async def test_bytes_round_trip_client_worker_client_with_msgpack(start_gateway, connect):
    gateway = await start_gateway(
        socketio_serializer="msgpack", task_serializer="msgpack", result_serializer="msgpack"
    )
    client = await connect(gateway, serializer="msgpack")

    task_id = await client.send_task({"task_name": "reverse_bytes", "args": [PAYLOAD]})

    success = await client.wait_for_event(events.ON_SUCCESS, task_id)
    assert success["retval"] == PAYLOAD[::-1]
    info = await client.call("task_info", task_id)
    assert info == {"id": task_id, "state": "SUCCESS", "result": PAYLOAD[::-1]}
