"""What we rely on in python-socketio, pinned: an upgrade that changes it fails here.

Workers before per-task channels published python-socketio's own pub/sub
``emit`` message without running python-socketio (stirfried.protocol.encode_event;
the gateway still relays it, as it relays 0.7.0 workers'), and the gateway's
manager hooks into two of its internals (``_handle_emit``, ``initialize``).
setup.cfg bounds python-socketio to the versions these tests passed on. Today's
workers publish a compact message on each task's channel: its round trip is
pinned here too.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from stirfried import protocol


class CapturingManager(AsyncPubSubManager):  # type: ignore[misc]
    """python-socketio's pub/sub manager, keeping what it would publish."""

    def __init__(self) -> None:
        super().__init__(channel=protocol.SOCKETIO_CHANNEL, write_only=True)
        self.published: list[dict[str, Any]] = []

    async def _publish(self, data: dict[str, Any]) -> None:
        self.published.append(data)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        pass


def our_message(event: str, payload: dict[str, Any], rooms: list[str], host_id: str, event_id: int) -> Any:
    encoded = protocol.encode_event(event, payload, rooms, host_id)
    # What the worker's Redis script publishes.
    return json.loads(f'{encoded.head}{{"event_id":{event_id},{encoded.body}{encoded.tail}')


@pytest.mark.parametrize(
    "payload",
    [
        {"task_id": "t1", "task_name": "add", "retval": [1, {"a": []}]},
        {"task_id": "t1", "task_name": "blob", "retval": b"\x00\xffbinary", "more": [b"x", {"y": b"z"}]},
    ],
    ids=["json", "binary"],
)
async def test_worker_messages_are_what_python_socketio_itself_publishes(payload):
    manager = CapturingManager()
    rooms = ["sid-1", protocol.task_room("t1")]
    await manager.emit("on_success", {"event_id": 7, **payload}, namespace="/", room=rooms)
    [theirs] = manager.published

    ours = our_message("on_success", payload, rooms, manager.host_id, event_id=7)

    assert ours == theirs


def test_the_internals_the_relay_hooks_into_are_still_there():
    assert inspect.iscoroutinefunction(socketio.AsyncRedisManager._handle_emit)
    assert list(inspect.signature(socketio.AsyncRedisManager._handle_emit).parameters) == ["self", "message"]
    assert callable(socketio.AsyncRedisManager.initialize)
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert server.manager_initialized is False


def test_a_worker_message_decodes_back_to_its_task_event():
    payload = {"task_id": "t1", "task_name": "blob", "retval": b"\x01\x02"}
    message = our_message("on_success", payload, ["sid-1", protocol.task_room("t1")], "host", event_id=3)

    decoded = protocol.decode_task_message(message)

    assert decoded is not None
    task_id, event = decoded
    assert task_id == "t1"
    assert (event.event_id, event.name, event.payload) == (3, "on_success", {"event_id": 3, **payload})


@pytest.mark.parametrize(
    "payload",
    [
        {"task_id": "t1", "task_name": "add", "retval": [1, {"a": []}]},
        {"task_id": "t1", "task_name": "blob", "retval": b"\x00\xffbinary", "more": [b"x", {"y": b"z"}]},
    ],
    ids=["json", "binary"],
)
def test_a_task_channel_message_decodes_back_to_its_event_and_room(payload):
    encoded = protocol.encode_task_message("on_success", payload, "sid-1")
    # What the worker's Redis script publishes on the task's channel.
    raw = f'{encoded.head}{{"event_id":3,"epoch":"ab12",{encoded.body}{encoded.tail}'.encode()

    live = protocol.decode_live_message(raw)

    assert live is not None
    assert live.room == "sid-1"
    assert (live.event.event_id, live.event.name) == (3, "on_success")
    assert live.event.payload == {"event_id": 3, "epoch": "ab12", **payload}
    assert protocol.task_id_of_channel(protocol.task_channel("t1")) == "t1"
