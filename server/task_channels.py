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
import functools
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions

from stirfried import protocol
from stirfried.server import redis_clients
from stirfried.server.errors import CeleryUnavailable

logger = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], Awaitable[None]]
"""Called with the task id and the raw message of each event received."""

# After a lost connection, wait this long before listening again (redis-py reconnects).
RECONNECT_PAUSE = 0.5

# A task's channel is left this long after its end, together with the others ended
# meanwhile: one command (per cluster node) for many tasks, and not in the moments right
# after a final event, when its client is likely scheduling the next task. Nothing is
# published on an ended task's channel, so the wait costs nothing but a line in Redis.
LEAVE_DELAY = 0.5

# Channels of tasks to come that a gateway keeps subscribed (TaskChannels.task_ids), and
# the level below which it subscribes more (in one command on one Redis).
RESERVE = 32
RESERVE_REFILL = 8
# After a failed refill, tasks take new ids for this long before the next attempt.
RESERVE_RETRY = 5.0


class Shard:
    """One subscriber connection (to one Redis, or one cluster node) and its listener."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        sharded: bool,
        on_message: OnMessage,
        on_reconnect: Callable[[], None],
    ) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._sharded = sharded
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        # Keeps SUBSCRIBE and UNSUBSCRIBE of one channel in the order they were decided.
        self.lock = asyncio.Lock()

    async def open(self, own_channel: str) -> None:
        """Connect, start listening; return once the gateway's own channel is confirmed."""
        confirmed = self._expect(own_channel)
        await self._pubsub.subscribe(own_channel)
        if self._pubsub.connection is not None:  # connected now: later calls are reconnects
            self._pubsub.connection.register_connect_callback(self._reconnected)
        self._listener = asyncio.create_task(self._listen(), name="stirfried-task-channels")
        await confirmed

    async def subscribe(self, channels: list[str]) -> list[asyncio.Future[None]]:
        """Send the subscriptions (one command on one Redis, one per channel on a cluster
        node, whose sharded commands take channels of one slot); the returned futures are
        done once Redis confirmed each."""
        confirmations = [self._expect(channel) for channel in channels]
        async with self.lock:
            if not self._sharded:
                await self._pubsub.subscribe(*channels)
            else:
                for channel in channels:
                    await self._pubsub.ssubscribe(channel)
        return confirmations

    def _reconnected(self, _connection: Any) -> None:
        self._on_reconnect()

    async def unsubscribe(self, channels: list[str]) -> None:
        """Unsubscribe (the caller holds :attr:`lock`): in one command on one Redis; one per
        channel on a cluster node (a sharded command's channels must share a slot)."""
        if not self._sharded:
            await self._pubsub.unsubscribe(*channels)
            return
        for channel in channels:
            await self._pubsub.sunsubscribe(channel)

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


def _settle(subscribed: asyncio.Future[None], confirmed: asyncio.Future[None]) -> None:
    """Pass a shard's confirmation (or its cancellation at close) on to the shared subscription."""
    if subscribed.done():
        return
    if confirmed.cancelled():
        subscribed.cancel()
    else:
        subscribed.set_result(None)


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
        # task id -> its subscription, done once Redis confirmed it
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        self._leaving: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()
        # Ended tasks whose unsubscription waits for the next batch (a dict as an ordered set).
        self._ended: dict[str, None] = {}
        self._leave_timer: asyncio.TimerHandle | None = None
        # Ids of tasks to come whose channels are subscribed already (see task_ids)
        self._reserved: list[str] = []
        self._refilling: asyncio.Task[None] | None = None
        self._reserve_generation = 0
        self._refill_after = -math.inf

    @property
    def shards(self) -> int:
        """Subscriber connections open (one per Redis, or per cluster node in use)."""
        return len(self._shards)

    def following(self) -> frozenset[str]:
        """The tasks this gateway is subscribed to."""
        return frozenset(self._followers)

    def reserved(self) -> frozenset[str]:
        """The ids of tasks to come whose channels are subscribed already (see :meth:`task_ids`)."""
        return frozenset(self._reserved)

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
        self._refill_soon()

    def task_ids(self, count: int) -> list[str]:
        """Ids for ``count`` tasks about to be scheduled and followed here.

        As many as the reserve holds are ids whose channels this gateway subscribed to
        beforehand (confirmed, and no event can have been published there), so following
        them costs no round trip to Redis before the tasks are published; the rest are
        new. The reserve refills in the background.
        """
        taken = [self._reserved.pop() for _ in range(min(count, len(self._reserved)))]
        for task_id in taken:
            subscribed = self._subscribed[task_id] = asyncio.get_running_loop().create_future()
            subscribed.set_result(None)
        if len(self._reserved) < RESERVE_REFILL:
            self._refill_soon()
        return taken + [str(uuid.uuid4()) for _ in range(count - len(taken))]

    def _refill_soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._refilling is None and self._on_message is not None and loop.time() >= self._refill_after:
            self._refilling = asyncio.get_running_loop().create_task(self._refill())
            self._refilling.add_done_callback(self._refilled)

    def _refilled(self, _refilling: asyncio.Task[None]) -> None:
        self._refilling = None

    async def _refill(self) -> None:
        generation = self._reserve_generation
        task_ids = [str(uuid.uuid4()) for _ in range(RESERVE - len(self._reserved))]
        try:
            by_shard: dict[Shard, list[str]] = {}
            for task_id in task_ids:
                shard = await self._shard_of(protocol.task_channel(task_id))
                by_shard.setdefault(shard, []).append(task_id)
            confirmations: list[asyncio.Future[None]] = []
            for shard, group in by_shard.items():
                confirmations += await shard.subscribe([protocol.task_channel(task_id) for task_id in group])
            async with asyncio.timeout(self._timeout):
                await asyncio.gather(*confirmations)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as error:
            logger.warning("could not subscribe to channels for tasks to come: %s", error)
            # Tasks take new ids meanwhile; an outage must not cost an attempt per task.
            self._refill_after = asyncio.get_running_loop().time() + RESERVE_RETRY
            generation = -1
        if generation != self._reserve_generation:  # failed, or a connection was lost meanwhile
            for task_id in task_ids:
                self._leave_later(task_id)
            return
        self._reserved.extend(task_ids)

    def _reserve_lost(self) -> None:
        """A subscriber connection was re-established: the reserve's subscriptions may have
        had a gap, so its ids are given up (unsubscribed) and replaced."""
        self._reserve_generation += 1
        lost, self._reserved = self._reserved, []
        for task_id in lost:
            self._leave_later(task_id)
        self._refill_soon()

    async def _open_shard(self, name: str, client: redis.asyncio.Redis) -> Shard:
        assert self._on_message is not None
        shard = Shard(client, self._cluster, self._on_message, self._reserve_lost)
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

    async def follow_soon(self, task_id: str) -> asyncio.Future[None]:
        """Add a follower of ``task_id``; return once its subscription is on its way to Redis
        (or in place) with a future that is done once its events reach this gateway, or
        failed. Not bounded in time, and shared: never cancel it.

        Every follow needs its :meth:`unfollow` (also when the subscription fails).
        """
        self._followers[task_id] = self._followers.get(task_id, 0) + 1
        subscribed = self._subscribed.get(task_id)
        if subscribed is not None:
            return subscribed
        loop = asyncio.get_running_loop()
        subscribed = self._subscribed[task_id] = loop.create_future()
        # A task of its own: a follower that gives up (an SSE client gone) must not stop a
        # subscription the followers after it share.
        sending = loop.create_task(self._send_subscription(task_id, subscribed))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)
        await asyncio.shield(sending)
        return subscribed

    async def _send_subscription(self, task_id: str, subscribed: asyncio.Future[None]) -> None:
        channel = protocol.task_channel(task_id)
        try:
            shard = await self._shard_of(channel)
            [confirmed] = await shard.subscribe([channel])
        except Exception as error:
            if not subscribed.done():
                subscribed.set_exception(error)
            return
        except BaseException:
            subscribed.cancel()  # at close
            raise
        confirmed.add_done_callback(functools.partial(_settle, subscribed))

    async def follow(self, task_id: str) -> None:
        """Add a follower of ``task_id``; return once its events reach this gateway.

        Every ``follow`` needs its :meth:`unfollow` (also when this one raises).
        """
        subscribed: asyncio.Future[None] | None = None
        try:
            async with asyncio.timeout(self._timeout):
                subscribed = await self.follow_soon(task_id)
                # Shielded: a follower that gives up must not cancel the others' subscription.
                await asyncio.shield(subscribed)
        except TimeoutError as error:
            raise CeleryUnavailable(
                f"Redis did not confirm the subscription to the task's events within {self._timeout:g} s"
            ) from error
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if subscribed is not None and subscribed.cancelled() and not (current and current.cancelling()):
                return  # the subscription was given up meanwhile (the task ended, or was unfollowed)
            raise

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
        self._leave_later(task_id)

    def _leave_later(self, task_id: str) -> None:
        self._ended[task_id] = None
        if self._leave_timer is None:
            self._leave_timer = asyncio.get_running_loop().call_later(LEAVE_DELAY, self._leave_ended)

    @contextlib.asynccontextmanager
    async def followed(self, task_id: str) -> AsyncIterator[None]:
        """Follow ``task_id`` while the block runs."""
        try:
            await self.follow(task_id)
            yield
        finally:
            self.unfollow(task_id)

    def _leave_ended(self) -> None:
        self._leave_timer = None
        task_ids = [task_id for task_id in self._ended if task_id not in self._followers]
        self._ended.clear()
        if task_ids:
            leaving = asyncio.get_running_loop().create_task(self._leave(task_ids))
            self._leaving.add(leaving)
            leaving.add_done_callback(self._leaving.discard)

    async def _leave(self, task_ids: list[str]) -> None:
        by_shard: dict[Shard, list[str]] = {}
        try:
            for task_id in task_ids:
                shard = await self._shard_of(protocol.task_channel(task_id))
                by_shard.setdefault(shard, []).append(task_id)
            for shard, leaving in by_shard.items():
                async with shard.lock:
                    # Not those followed again meanwhile.
                    channels = [
                        protocol.task_channel(task) for task in leaving if task not in self._followers
                    ]
                    if channels:
                        await shard.unsubscribe(channels)
        except (redis.exceptions.RedisError, OSError, KeyError) as error:
            logger.warning(
                "could not unsubscribe from %d task(s), %s first: %s", len(task_ids), task_ids[0], error
            )

    async def close(self) -> None:
        if self._leave_timer is not None:
            self._leave_timer.cancel()
        if self._refilling is not None:
            self._refilling.cancel()
        for pending in (*self._leaving, *self._sending, *self._subscribed.values()):
            pending.cancel()
        for shard in self._shards.values():
            await shard.close()
        self._shards.clear()
        if self._cluster_client is not None:
            await self._cluster_client.aclose()
