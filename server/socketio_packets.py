"""The Socket.IO packets the gateway accepts: bounded binary attachments, our JSON codec.

python-socketio lets a server bring its own packet class (the ``serializer``
option takes a ``Packet`` subclass: its public extension point). Ours

- parses JSON with :class:`stirfried.server.task_request.ClientJson` (set on our
  class only: python-socketio's ``json`` option would set it on its own ``Packet``
  class, for every server and client in the process);
- bounds binary attachments. A packet announces how many attachments follow
  and python-socketio buffers them until all have arrived; without a bound, one
  connection announcing millions of them and sending large frames held
  hundreds of megabytes. A gateway whose Celery tasks cannot take bytes (any
  task serializer but msgpack) refuses binary packets altogether; otherwise a
  packet may carry ``MAX_ATTACHMENTS`` attachments totalling at most
  ``stirfried_max_request_bytes``.

A refused packet raises ValueError, which python-socketio reports (see
:mod:`stirfried.server.logs` for how that becomes one brief warning) and the
client's connection receives nothing more from it.
"""

from __future__ import annotations

from typing import Any

from socketio import packet
from socketio.msgpack_packet import MsgPackPacket

from stirfried.server.task_request import ClientJson

MAX_ATTACHMENTS = 64


class _BoundedAttachments(packet.Packet):  # type: ignore[misc]
    """Refuses packets with more attachments, or more attachment bytes, than allowed."""

    max_attachments = 0
    max_attachment_bytes = 0

    def decode(self, encoded_packet: Any) -> int:
        count: int = super().decode(encoded_packet)
        if count > self.max_attachments:
            raise ValueError(
                f"a packet with {count} binary attachments (this gateway accepts {self.max_attachments})"
            )
        return count

    def add_attachment(self, attachment: Any) -> bool:
        received = sum(len(item) for item in self.attachments) + len(attachment)
        if received > self.max_attachment_bytes:
            raise ValueError(f"binary attachments over {self.max_attachment_bytes} bytes")
        done: bool = super().add_attachment(attachment)
        return done


def packet_class(serializer: str, binary_arguments: bool, max_bytes: int) -> type[packet.Packet]:
    """The packet class for an ``AsyncServer`` with the ``socketio_serializer`` ``serializer``.

    ``binary_arguments``: whether tasks can take bytes (a msgpack task serializer).
    msgpack packets carry binary inline, bounded by Engine.IO's message size.
    """
    if serializer == "msgpack":
        return type("GatewayMsgPackPacket", (MsgPackPacket,), {})
    return type(
        "GatewayPacket",
        (_BoundedAttachments,),
        {
            "json": ClientJson,
            "max_attachments": MAX_ATTACHMENTS if binary_arguments else 0,
            "max_attachment_bytes": max_bytes,
        },
    )
