"""Tell systemd about the gateway's state (``Type=notify``), without a helper daemon.

The protocol is one datagram per message to the Unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without the
variable, nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)

NOTIFY_SOCKET_VARIABLE = "NOTIFY_SOCKET"


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``); return whether it was sent."""
    address = environ.get(NOTIFY_SOCKET_VARIABLE)
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as error:
        logger.warning("could not notify systemd (%s): %s", message, error)
        return False
    return True
