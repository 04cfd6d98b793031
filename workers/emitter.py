"""Publish task events from a worker process: numbered, logged and relayed in one round trip.

Each event goes out through one Lua script on the Stirfried Redis server that

1. numbers it: ``INCR`` of the task's counter gives its ``event_id``,
2. logs it: ``XADD`` to the task's capped stream (unless the log is off),
3. publishes it on the task's own channel (:func:`stirfried.protocol.task_channel`,
   :func:`stirfried.protocol.encode_task_message`): only the gateways that follow the
   task are subscribed, so the others never see it. On a Redis Cluster it is a
   ``SPUBLISH`` (sharded pub/sub): the counter, the log and the channel share the
   task's hash tag, so the script touches one slot.

With a ``state`` (the task retried, ended or was revoked) the same script writes it,
and the time a final one was reached, to the task's record
(:func:`stirfried.protocol.task_record_key`), which "my tasks" lists read.

Doing all of it in one script makes the order in the log, the order of the
``event_id``\\ s and the order of publication the same, even when a retried task
runs on another worker, and costs one round trip per event.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

import redis
import redis.cluster

from stirfried import protocol

logger = logging.getLogger(__name__)

# KEYS: sequence counter, event stream, the task's channel (a key of the same slot), epoch,
# record. ARGV: publish command, message head, payload without its "{", message tail, event
# name, attachments (JSON list, "" when none), log length (0: no log), ttl, a new epoch,
# the task's new state ("" for none), "finished" when that state is final (else ""), now,
# when the task started if its record may still lack it (else "").
# A counter that starts at 1 starts a new log, under the new epoch.
EMIT_SCRIPT = """
local id = string.format('%d', redis.call('INCR', KEYS[1]))
redis.call('EXPIRE', KEYS[1], ARGV[8])
local epoch = false
if id ~= '1' then epoch = redis.call('GET', KEYS[4]) end
if not epoch then epoch = ARGV[9] end
redis.call('SET', KEYS[4], epoch, 'EX', ARGV[8])
local payload = '{"event_id":' .. id .. ',"epoch":"' .. epoch .. '",' .. ARGV[3]
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
redis.call(ARGV[1], KEYS[3], ARGV[2] .. payload .. ARGV[4])
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[5], 'state', ARGV[10])
  if ARGV[11] ~= '' then redis.call('HSET', KEYS[5], ARGV[11], ARGV[12]) end
  if ARGV[13] ~= '' then redis.call('HSETNX', KEYS[5], 'started', ARGV[13]) end
  redis.call('EXPIRE', KEYS[5], ARGV[8])
end
return tonumber(id)
"""


class TaskEventEmitter:
    """Numbers, logs and publishes a worker's task events; one per worker process.

    A failed publish is logged and swallowed, because a lost event must never
    fail the task. With ``cluster``, ``redis_url`` names a node of a Redis Cluster.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        log_max_length: int,
        log_ttl: int,
        log_enabled: bool = True,
        cluster: bool = False,
    ) -> None:
        self._redis: redis.Redis | redis.cluster.RedisCluster = (
            redis.cluster.RedisCluster.from_url(redis_url) if cluster else redis.Redis.from_url(redis_url)
        )
        self._script = self._redis.register_script(EMIT_SCRIPT)
        self._publish = "SPUBLISH" if cluster else "PUBLISH"
        self._log_length = log_max_length if log_enabled else 0
        self._ttl = log_ttl
        self._starts: StartRecorder | None = None

    def emit(
        self,
        event: str,
        payload: dict[str, Any],
        task_id: str,
        room: str | None,
        state: str | None = None,
        final: bool = False,
    ) -> int | None:
        """Send ``event`` to the task's followers (and ``room``); return its ``event_id``
        (None if Redis failed). ``state``: the task's new state, for its record; ``final``:
        the task ends with it."""
        try:
            now = time.time()
            # A start still waiting in the recorder's thread goes with the final event.
            started = self._starts.take(task_id) if final and self._starts is not None else None
            encoded = protocol.encode_task_message(event, {protocol.TIMESTAMP: now, **payload}, room)
            event_id = self._script(
                keys=[
                    protocol.event_sequence_key(task_id),
                    protocol.event_log_key(task_id),
                    protocol.task_channel(task_id),
                    protocol.epoch_key(task_id),
                    protocol.task_record_key(task_id),
                ],
                args=[
                    self._publish, encoded.head, encoded.body, encoded.tail, event,
                    encoded.attachments, self._log_length, self._ttl, secrets.token_hex(6),
                    state or "", "finished" if final else "", now, started or "",
                ],
            )  # fmt: skip
            return int(event_id)
        except Exception:
            logger.exception("could not emit %s of task %s", event, task_id)
            return None

    def record_started(self, task_id: str) -> None:
        """Note in the task's record that a worker started it, off the task's path: a
        background thread writes it, so the task's first event is not held up by it."""
        if self._starts is None:
            self._starts = StartRecorder(self._redis, self._ttl)
        self._starts.put(task_id)

    @property
    def client(self) -> redis.Redis | redis.cluster.RedisCluster:
        """The worker's Redis connection (the catalog announcer shares it)."""
        return self._redis

    def close(self) -> None:
        if self._starts is not None:
            self._starts.close()
        self._redis.close()


# KEYS: the task's record. ARGV: now, ttl. A start that arrives after the task ended (the
# thread lagged) changes nothing but the start time it lacked.
START_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], 'finished') == 0 then redis.call('HSET', KEYS[1], 'state', 'STARTED') end
redis.call('HSETNX', KEYS[1], 'started', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""


# The start-recording thread writes what came in this often, while starts come in; after
# IDLE_ROUNDS rounds without one it sleeps until the next start wakes it.
START_INTERVAL = 0.05
IDLE_ROUNDS = 20


class StartRecorder:
    """Writes "started" to task records from a daemon thread of the worker process.

    The thread looks for new starts every START_INTERVAL seconds instead of being woken
    by each one: a wake-up at a task's start would take the interpreter from the task
    (and its first event) just then. Only the first start after a quiet second wakes it.
    """

    def __init__(self, client: redis.Redis | redis.cluster.RedisCluster, ttl: int) -> None:
        self._redis = client
        self._script = client.register_script(START_SCRIPT)
        self._ttl = ttl
        # task id -> when it started; a dict's single operations hold under the GIL
        self._pending: dict[str, float] = {}
        # Set by put() only while the thread sleeps (asleep): the thread announces its
        # sleep before it checks for starts a last time, put() appends before it looks.
        self._asleep = False
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="stirfried-starts", daemon=True)
        self._thread.start()

    def put(self, task_id: str) -> None:
        self._pending[task_id] = time.time()
        if self._asleep:
            self._wake.set()

    def take(self, task_id: str) -> float | None:
        """Take back the task's start if it is not written yet: when it started."""
        return self._pending.pop(task_id, None)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        quiet = 0
        while not self._closed:
            if not self._pending:
                quiet += 1
            if quiet >= IDLE_ROUNDS:
                self._asleep = True
                if not self._pending and not self._closed:
                    self._wake.wait()
                self._wake.clear()
                self._asleep = False
                quiet = 0
            time.sleep(START_INTERVAL)
            if self._pending:
                quiet = 0
                self._write()
        self._write()

    def _write(self) -> None:
        while self._pending:
            try:
                task_id, started = self._pending.popitem()
            except KeyError:  # the last one was taken back meanwhile
                return
            try:
                self._script(keys=[protocol.task_record_key(task_id)], args=[started, self._ttl])
            except Exception:
                logger.exception("could not record the start of task %s", task_id)
