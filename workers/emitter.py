"""Publish task events from a worker process: numbered, logged and relayed in one round trip.

Each event goes out through one Lua script on the Stirfried Redis server that

1. numbers it: ``INCR`` of the task's counter gives its ``event_id``,
2. logs it: ``XADD`` to the task's capped stream (unless the log is off),
3. publishes it on python-socketio's channel, in python-socketio's own message
   format (:func:`stirfried.protocol.encode_event`), to the task's rooms; every
   gateway's ``AsyncRedisManager`` delivers it.

Doing all three in one script makes the order in the log, the order of the
``event_id``\\ s and the order of publication the same, even when a retried task
runs on another worker, and costs one round trip per event.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from stirfried import protocol

logger = logging.getLogger(__name__)

# KEYS: sequence counter, event stream.
# ARGV: channel, message head, payload without its "{", message tail, event
# name, attachments (JSON list, "" when none), log length (0: no log), ttl.
EMIT_SCRIPT = """
local id = string.format('%d', redis.call('INCR', KEYS[1]))
redis.call('EXPIRE', KEYS[1], ARGV[8])
local payload = '{"event_id":' .. id .. ',' .. ARGV[3]
if tonumber(ARGV[7]) > 0 then
  local entry = {'event', ARGV[5], 'data', payload}
  if ARGV[6] ~= '' then
    table.insert(entry, 'attachments')
    table.insert(entry, ARGV[6])
  end
  -- pcall: a log that cannot take the entry (e.g. evicted counter) must not stop the event.
  redis.pcall('XADD', KEYS[2], 'MAXLEN', ARGV[7], id .. '-0', unpack(entry))
  redis.call('EXPIRE', KEYS[2], ARGV[8])
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. payload .. ARGV[4])
return tonumber(id)
"""


class TaskEventEmitter:
    """Numbers, logs and publishes a worker's task events; one per worker process.

    A failed publish is logged and swallowed, because a lost event must never
    fail the task.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        log_max_length: int,
        log_ttl: int,
        log_enabled: bool = True,
        channel: str = protocol.SOCKETIO_CHANNEL,
    ) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._script = self._redis.register_script(EMIT_SCRIPT)
        self._channel = channel
        self._log_length = log_max_length if log_enabled else 0
        self._ttl = log_ttl
        self._host_id = uuid.uuid4().hex

    def emit(self, event: str, payload: dict[str, Any], task_id: str, rooms: Sequence[str]) -> int | None:
        """Send ``event`` to ``rooms``; return its ``event_id`` (None if Redis failed)."""
        try:
            encoded = protocol.encode_event(
                event, {protocol.TIMESTAMP: time.time(), **payload}, rooms, self._host_id
            )
            event_id = self._script(
                keys=[protocol.event_sequence_key(task_id), protocol.event_log_key(task_id)],
                args=[
                    self._channel, encoded.head, encoded.body, encoded.tail, event,
                    encoded.attachments, self._log_length, self._ttl,
                ],
            )  # fmt: skip
            return int(event_id)
        except Exception:
            logger.exception("could not emit %s of task %s", event, task_id)
            return None

    def close(self) -> None:
        self._redis.close()
