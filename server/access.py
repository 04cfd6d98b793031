"""Who may follow, read and revoke which task.

Following a task (``subscribe_task``, the SSE stream) takes one of: its
subscription token (handed to whoever scheduled it), a client token whose
``follow`` claim names the task id, or one whose ``follow_tags`` share a tag
with the task. Reading and revoking are open to all on an anonymous gateway
(as in Stirfried 0.7.0) and take the same proof when tokens are required.

Tags live in Redis next to the task's event log (``stirfried:{task_id}:tags``,
kept as long as the log), written when a token holder schedules the task.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio

from stirfried import events
from stirfried.server.auth import Authenticator, Principal
from stirfried.server.task_request import NotPermitted
from stirfried.server.tokens import SubscriptionTokens

logger = logging.getLogger(__name__)


def tags_key(task_id: str) -> str:
    return f"{events.RESERVED_PREFIX}{{{task_id}}}:tags"


class TaskAccess:
    def __init__(
        self,
        authenticator: Authenticator,
        tokens: SubscriptionTokens,
        client: redis.asyncio.Redis | None,
        tags_ttl: int,
    ) -> None:
        self._authenticator = authenticator
        self._tokens = tokens
        self._redis = client
        self._ttl = tags_ttl

    async def tag(self, task_id: str, principal: Principal) -> None:
        """Record the tags of a task a token holder schedules. Best effort: without Redis
        the task still runs; only following it by tag will not work."""
        if self._redis is None or not principal.tags:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(tags_key(task_id), *sorted(principal.tags))
                pipe.expire(tags_key(task_id), self._ttl)
                await pipe.execute()
        except (redis.RedisError, OSError) as error:
            logger.warning("could not tag task %s: %s", task_id, error)

    async def check_follow(self, principal: Principal, task_id: str, token: Any) -> None:
        principal.check_current()
        if self._tokens.verify(task_id, token) or principal.may_follow(task_id):
            return
        if principal.follow_tags and self._redis is not None:
            try:
                tags = await self._redis.smembers(tags_key(task_id))
            except (redis.RedisError, OSError) as error:
                logger.warning("could not read the tags of task %s: %s", task_id, error)
                tags = set()
            if {tag.decode() if isinstance(tag, bytes) else tag for tag in tags} & principal.follow_tags:
                return
        raise NotPermitted("a valid subscription token for this task is required")

    async def check_task_access(self, principal: Principal, task_id: str, token: Any) -> None:
        principal.check_current()
        if not self._authenticator.anonymous:
            await self.check_follow(principal, task_id, token)
