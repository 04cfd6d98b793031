"""What we rely on in python-socketio, pinned: an upgrade that changes it fails here.

The gateway relays python-socketio's own pub/sub ``emit`` messages (from Stirfried
0.7.0 workers and from other gateways) and decodes task events out of them
(stirfried.protocol.decode_task_message); its manager hooks into
python-socketio's internals (``_handle_emit``, ``initialize``; for local emits the rooms,
participants, packet class and Engine.IO ``send_packet``), and its session guard
reads a third (``AsyncServer.environ``).
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


@pytest.mark.parametrize(
    "payload",
    [
        {"task_id": "t1", "task_name": "add", "retval": [1, {"a": []}]},
        {"task_id": "t1", "task_name": "blob", "retval": b"\x00\xffbinary", "more": [b"x", {"y": b"z"}]},
    ],
    ids=["json", "binary"],
)
async def test_a_message_python_socketio_itself_publishes_decodes_to_its_task_event(payload):
    # What Stirfried 0.7.0 workers (python-socketio's RedisManager) and other gateways send.
    manager = CapturingManager()
    rooms = ["sid-1", protocol.task_room("t1")]
    await manager.emit("on_success", {"event_id": 7, **payload}, namespace="/", room=rooms)
    [theirs] = manager.published

    decoded = protocol.decode_task_message(json.loads(json.dumps(theirs)))

    assert decoded is not None
    task_id, event = decoded
    assert task_id == "t1"
    assert (event.event_id, event.name, event.payload) == (7, "on_success", {"event_id": 7, **payload})


def test_the_internals_the_relay_hooks_into_are_still_there():
    assert inspect.iscoroutinefunction(socketio.AsyncRedisManager._handle_emit)
    assert list(inspect.signature(socketio.AsyncRedisManager._handle_emit).parameters) == ["self", "message"]
    assert callable(socketio.AsyncRedisManager.initialize)
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert server.manager_initialized is False
    # stirfried.server.session_guard: each Engine.IO session's environ, and its Socket.IO sid.
    assert server.environ == {}
    assert callable(server.manager.sid_from_eio_sid)
    # RelayingRedisManager.emit's local fan-out: the packet class, the Engine.IO server's
    # send_packet, the manager's rooms and participants (a copy, so a send may await).
    assert issubclass(server.packet_class, socketio.packet.Packet)
    assert list(inspect.signature(server.eio.send_packet).parameters) == ["sid", "pkt"]
    assert list(inspect.signature(server.manager.get_participants).parameters) == ["namespace", "room"]
    assert server.manager.rooms == {}
    params = inspect.signature(AsyncPubSubManager.emit).parameters
    assert list(params)[:8] == ["self", "event", "data", "namespace", "room", "skip_sid", "callback", "to"]


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
