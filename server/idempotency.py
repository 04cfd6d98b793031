"""Idempotent submits: the same ``Idempotency-Key`` from the same caller runs one task.

A submission with a key first *claims* it in Redis (``SET NX``): the entry holds
a fingerprint of the task object and the task id chosen for it, in state
``publishing``. The publish's final outcome *settles* it: ``published`` (kept
for ``stirfried_idempotency_window``), or deleted when nothing was sent, so a
retry publishes afresh. The outcome is the broker's final word, also when the
client was already answered 503 because the publish took too long
(:class:`~stirfried.server.publish_batcher.Batcher` reports it), which is what
makes "retry after a 503" safe.

A repeat finds the entry: a different fingerprint is a conflict (409); a
published one returns its task id; one still publishing is waited for. An entry
whose gateway died mid-publish expires after :data:`PUBLISHING_TTL_FACTOR` broker
timeouts; only then can a retry publish again (see docs/trust.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from typing import Any

import redis.asyncio

from stirfried import protocol
from stirfried.server.errors import CeleryUnavailable, IdempotencyConflict, ServiceMissing

logger = logging.getLogger(__name__)

PUBLISHING = "publishing"
PUBLISHED = "published"
# A publish outcome arrives within a few broker timeouts (kombu's bounded retries).
PUBLISHING_TTL_FACTOR = 6
POLL_SECONDS = 0.05

# KEYS: the entry. ARGV: the task id that claimed it, new state ("" deletes), ttl.
SETTLE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if not value or cjson.decode(value)['task_id'] ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
local entry = cjson.decode(value)
entry['state'] = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(entry), 'EX', ARGV[3])
return 1
"""


def fingerprint(data: Any) -> str:
    """A digest of a task object, the idempotency key itself left out."""
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key != "idempotency_key"}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claimed key: the caller publishes, then settles it."""

    key: str
    task_id: str


class IdempotencyKeys:
    """Claims and settles idempotency keys in Redis, shared by every gateway."""

    def __init__(self, client: redis.asyncio.Redis | None, window: int, broker_timeout: float) -> None:
        self._redis = client
        self._window = window
        self._wait = 2 * broker_timeout
        self._publishing_ttl = max(1, round(PUBLISHING_TTL_FACTOR * broker_timeout))
        self._settle = client.register_script(SETTLE_SCRIPT) if client is not None else None

    async def claim(self, scope: str, key: str, digest: str, task_id: str) -> Claim | str:
        """Claim ``key`` for a new submission of ``task_id``: a :class:`Claim` means publish it;
        a string is the task id of the earlier submission under the same key and body.

        Raises IdempotencyConflict for another body under the key, CeleryUnavailable when
        the earlier submission is still being published after a while.
        """
        if self._redis is None:
            raise ServiceMissing("idempotency keys need stirfried_redis_url on the gateway")
        entry_key = protocol.idempotency_key(scope, key)
        claim = json.dumps({"fingerprint": digest, "task_id": task_id, "state": PUBLISHING})
        deadline = asyncio.get_running_loop().time() + self._wait
        while True:
            try:
                if await self._redis.set(entry_key, claim, nx=True, ex=self._publishing_ttl):
                    return Claim(entry_key, task_id)
                value = await self._redis.get(entry_key)
            except (redis.RedisError, OSError) as error:
                raise CeleryUnavailable(
                    f"could not check the idempotency key: {type(error).__name__}"
                ) from error
            if value is None:
                continue  # settled as not sent in between: claim it afresh
            earlier = json.loads(value)
            if earlier.get("fingerprint") != digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used for a different task object; use a new key"
                )
            if earlier.get("state") == PUBLISHED:
                return str(earlier["task_id"])
            if asyncio.get_running_loop().time() >= deadline:
                raise CeleryUnavailable(
                    f"the submission under idempotency key {key!r} is still being published; retry later"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def settle(self, claim: Claim, sent: bool) -> None:
        """Record the publish's outcome: kept for the window if sent, released if not."""
        assert self._settle is not None
        try:
            await self._settle(
                keys=[claim.key], args=[claim.task_id, PUBLISHED if sent else "", self._window]
            )
        except (redis.RedisError, OSError) as error:
            # The entry expires as "publishing": a retry waits, then may publish again.
            logger.error("could not settle idempotency entry of task %s: %s", claim.task_id, error)
