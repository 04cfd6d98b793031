"""This gateway's subscriptions to task channels: it receives only the tasks its own followers follow.

Workers publish each task's events on the task's own channel
(:func:`stirfried.protocol.task_channel`). A gateway subscribes to a task's
channel while at least one of its followers follows it (the Socket.IO client
that scheduled it, a ``subscribe_task``, an SSE stream) and unsubscribes when
the last one leaves, so a gateway whose clients follow nothing receives nothing.

On one Redis there is one subscriber connection (``SUBSCRIBE``). On a Redis
Cluster there is one per primary node (``SSUBSCRIBE``, sharded pub/sub): a
task's channel lives on the node that owns its hash slot, the one its worker's
script ``SPUBLISH``\\ es on. :meth:`TaskChannels.follow` returns once Redis has
confirmed the subscription, so an event published after it returns is received.

Each connection also holds a subscription to a channel only this gateway knows,
so it always listens, and redis-py resubscribes everything after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions

from stirfried import protocol
from stirfried.server import redis_clients

logger = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], Awaitable[None]]
"""Called with the task id and the raw message of each event received."""

# After a lost connection, wait this long before listening again (redis-py reconnects).
RECONNECT_PAUSE = 0.5


class Shard:
    """One subscriber connection (to one Redis, or one cluster node) and its listener."""

    def __init__(self, client: redis.asyncio.Redis, sharded: bool, on_message: OnMessage) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._sharded = sharded
        self._on_message = on_message
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        # Keeps SUBSCRIBE and UNSUBSCRIBE of one channel in the order they were decided.
        self.lock = asyncio.Lock()

    async def open(self, own_channel: str) -> None:
        """Connect, start listening; return once the gateway's own channel is confirmed."""
        confirmed = self._expect(own_channel)
        await self._pubsub.subscribe(own_channel)
        self._listener = asyncio.create_task(self._listen(), name="stirfried-task-channels")
        await confirmed

    async def subscribe(self, channel: str) -> None:
        """Subscribe; return once Redis confirmed it."""
        confirmed = self._expect(channel)
        async with self.lock:
            if self._sharded:
                await self._pubsub.ssubscribe(channel)
            else:
                await self._pubsub.subscribe(channel)
        await confirmed

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe (the caller holds :attr:`lock`)."""
        if self._sharded:
            await self._pubsub.sunsubscribe(channel)
        else:
            await self._pubsub.unsubscribe(channel)

    def _expect(self, channel: str) -> asyncio.Future[None]:
        key = channel.encode()
        future = self._confirmations.get(key)
        if future is None or future.done():
            future = self._confirmations[key] = asyncio.get_running_loop().create_future()
        return future

    async def _listen(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    await self._handle(message)
                # listen() returns when nothing is subscribed: never spin.
                await asyncio.sleep(RECONNECT_PAUSE)
            except (redis.exceptions.RedisError, OSError) as error:
                logger.warning("task channel subscriber lost its connection (%s); reconnecting", error)
                await asyncio.sleep(RECONNECT_PAUSE)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("message", "smessage"):
            task_id = protocol.task_id_of_channel(message["channel"].decode())
            if task_id is not None:
                try:
                    await self._on_message(task_id, message["data"])
                except Exception:
                    logger.exception("could not relay an event of task %s", task_id)
        elif kind in ("subscribe", "ssubscribe"):
            future = self._confirmations.pop(message["channel"], None)
            if future is not None and not future.done():
                future.set_result(None)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for future in self._confirmations.values():
            future.cancel()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._client.aclose()


class TaskChannels:
    """Reference-counted subscriptions to task channels, on one Redis or a cluster."""

    def __init__(self, url: str, cluster: bool, timeout: float) -> None:
        self._url = url
        self._cluster = cluster
        self._timeout = timeout
        self._own_channel = f"{protocol.RESERVED_PREFIX}gateway:{uuid.uuid4().hex}"
        self._shards: dict[str, Shard] = {}
        self._cluster_client: redis.asyncio.cluster.RedisCluster | None = None
        self._on_message: OnMessage | None = None
        self._opening = asyncio.Lock()
        self._followers: dict[str, int] = {}
        # task id -> its subscription, confirmed when the task is done
        self._subscribed: dict[str, asyncio.Task[None]] = {}
        self._leaving: set[asyncio.Task[None]] = set()

    @property
    def shards(self) -> int:
        """Subscriber connections open (one per Redis, or per cluster node in use)."""
        return len(self._shards)

    def following(self) -> frozenset[str]:
        """The tasks this gateway is subscribed to."""
        return frozenset(self._followers)

    async def open(self, on_message: OnMessage) -> None:
        """Start listening (on a cluster, a node's connection opens when first needed)."""
        self._on_message = on_message
        options = {**redis_clients.client_options(self._timeout), "socket_timeout": None}
        if self._cluster:
            self._cluster_client = redis.asyncio.cluster.RedisCluster.from_url(
                self._url, **redis_clients.client_options(self._timeout)
            )
            await self._cluster_client.initialize()
        else:
            await self._open_shard("", redis.asyncio.Redis.from_url(self._url, **options))

    async def _open_shard(self, name: str, client: redis.asyncio.Redis) -> Shard:
        assert self._on_message is not None
        shard = Shard(client, self._cluster, self._on_message)
        try:
            await asyncio.wait_for(shard.open(self._own_channel), self._timeout)
        except BaseException:
            await shard.close()
            raise
        # Only an open shard is shared: redis-py's PubSub connects on its first command.
        self._shards[name] = shard
        return shard

    async def _shard_of(self, channel: str) -> Shard:
        if self._cluster_client is None:
            return self._shards[""]
        node = self._cluster_client.get_node_from_key(channel)
        if node is None:
            raise redis.exceptions.ClusterDownError(f"no cluster node serves {channel}")
        shard = self._shards.get(node.name)
        if shard is not None:
            return shard
        async with self._opening:
            shard = self._shards.get(node.name)
            if shard is None:
                options = {**redis_clients.client_options(self._timeout), "socket_timeout": None}
                client = redis.asyncio.Redis(host=node.host, port=int(node.port), **options)
                shard = await self._open_shard(node.name, client)
            return shard

    async def follow(self, task_id: str) -> None:
        """Add a follower of ``task_id``; return once its events reach this gateway.

        Every ``follow`` needs its :meth:`unfollow` (also when this one raises).
        """
        self._followers[task_id] = self._followers.get(task_id, 0) + 1
        subscribed = self._subscribed.get(task_id)
        if subscribed is None:
            subscribed = asyncio.get_running_loop().create_task(self._subscribe(task_id))
            self._subscribed[task_id] = subscribed
        # Shielded: a follower that gives up must not cancel the others' subscription.
        try:
            await asyncio.wait_for(asyncio.shield(subscribed), self._timeout)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if subscribed.cancelled() and not (current is not None and current.cancelling()):
                return  # the subscription was given up meanwhile (the task ended, or was unfollowed)
            raise

    async def _subscribe(self, task_id: str) -> None:
        channel = protocol.task_channel(task_id)
        shard = await self._shard_of(channel)
        await shard.subscribe(channel)

    def unfollow(self, task_id: str) -> None:
        """Remove a follower; the last one's leaving unsubscribes (in the background)."""
        count = self._followers.get(task_id)
        if count is None:  # ended() already let it go
            return
        if count > 1:
            self._followers[task_id] = count - 1
            return
        self.ended(task_id)

    def ended(self, task_id: str) -> None:
        """Unsubscribe from a task whose final event has passed, whoever still follows it."""
        if self._followers.pop(task_id, None) is None:
            return
        subscribed = self._subscribed.pop(task_id, None)
        if subscribed is not None and not subscribed.done():
            subscribed.cancel()
        leaving = asyncio.get_running_loop().create_task(self._leave(task_id))
        self._leaving.add(leaving)
        leaving.add_done_callback(self._leaving.discard)

    @contextlib.asynccontextmanager
    async def followed(self, task_id: str) -> AsyncIterator[None]:
        """Follow ``task_id`` while the block runs."""
        try:
            await self.follow(task_id)
            yield
        finally:
            self.unfollow(task_id)

    async def _leave(self, task_id: str) -> None:
        channel = protocol.task_channel(task_id)
        try:
            shard = await self._shard_of(channel)
            async with shard.lock:
                if task_id not in self._followers:  # nobody followed it again meanwhile
                    await shard.unsubscribe(channel)
        except (redis.exceptions.RedisError, OSError, KeyError) as error:
            logger.warning("could not unsubscribe from task %s: %s", task_id, error)

    async def close(self) -> None:
        for pending in (*self._leaving, *self._subscribed.values()):
            pending.cancel()
        for shard in self._shards.values():
            await shard.close()
        self._shards.clear()
        if self._cluster_client is not None:
            await self._cluster_client.aclose()
