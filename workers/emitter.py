"""Publish task events from a worker process to the gateways' Socket.IO rooms."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import socketio

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    """Fallback for values ``json`` cannot encode, so an odd return value still arrives."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return repr(value)


class EventJson:
    """The ``json`` module python-socketio's manager uses, with a lenient encoder.

    Bytes never reach it: python-socketio moves them out as binary attachments first.
    """

    @staticmethod
    def dumps(value: Any, **kwargs: Any) -> str:
        return json.dumps(value, default=_jsonable, separators=(",", ":"), **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, **kwargs)


class TaskEventEmitter:
    """Sends events to a room through python-socketio's write-only ``RedisManager``.

    One instance per worker process: it holds one Redis connection pool. A failed
    publish is logged and swallowed, because a lost event must never fail the task.
    """

    def __init__(self, redis_url: str, channel: str = "socketio") -> None:
        self._manager = socketio.RedisManager(
            redis_url, channel=channel, write_only=True, json=EventJson, logger=logger
        )

    def emit(self, event: str, payload: dict[str, Any], room: str) -> None:
        """Publish ``event`` with ``payload`` to every client in ``room``."""
        try:
            self._manager.emit(event, payload, room=room, namespace="/")
        except Exception:
            logger.exception("could not emit %s to room %s", event, room)
