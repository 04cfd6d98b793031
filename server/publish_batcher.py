"""Coalesce concurrent publishes into batches: one broker round trip for many tasks.

A publish costs the gateway one broker round trip, and on a busy gateway
many clients publish at once. Items that arrive while a batch is on its way
wait here and leave together in the next one, so under load the gateway pays
one round trip per batch instead of one per task, and an idle gateway adds no
delay (the first item of a quiet moment leaves at once).

An item still waiting when its caller gives up (timeout, disconnect) is taken
out of the queue, so a publish the client was told failed is never sent
later. Once its batch has left, the outcome is the broker's; a caller that needs
it even after giving up (idempotent submits) passes a ``settled`` callback.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Outcomes = list[BaseException | None]
"""What became of each item of a batch, in order: None (sent) or the error."""

Settled = Callable[[bool], None]
"""Called once with an item's final outcome: True (sent) or False (not sent)."""


class Batcher(Generic[T]):
    """Sends items in batches through ``send_batch``, at most ``max_in_flight`` batches at a time.

    ``send_batch`` sends a batch (blocking work belongs in a thread) and returns an
    awaitable of one outcome per item: a coroutine, or a future such as
    ``run_in_executor``'s, which saves the task a coroutine needs; if it raises,
    every item of the batch fails with that error. All state is touched on the
    event loop only, so no locks.
    """

    def __init__(
        self,
        send_batch: Callable[[list[T]], Awaitable[Outcomes]],
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self._send_batch = send_batch
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[T, asyncio.Future[None], Settled | None]] = []
        self._in_flight = 0
        self._batches: set[asyncio.Future[Outcomes]] = set()

    @property
    def waiting(self) -> int:
        """Items queued for a later batch."""
        return len(self._waiting)

    async def send(self, item: T, settled: Settled | None = None) -> None:
        """Send ``item`` in the next batch; raise its error if it failed. ``settled`` learns
        the final outcome even if this call is cancelled first."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (item, future, settled)
        self._waiting.append(entry)
        self._start_batches()
        try:
            await future
        except asyncio.CancelledError:
            # Still queued: take it out (by identity; items may compare equal); never sent.
            if any(waiting is entry for waiting in self._waiting):
                self._waiting = [waiting for waiting in self._waiting if waiting is not entry]
                if settled is not None:
                    settled(False)
            raise

    async def drain(self) -> None:
        """Wait until every batch that has left has come back."""
        while self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    def _start_batches(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: len(batch)]
            self._in_flight += 1
            sending: asyncio.Future[Outcomes]
            try:
                sending = asyncio.ensure_future(self._send_batch([item for item, _, _ in batch]))  # noqa: RUF006 -- held in self._batches
            except Exception as error:  # it could not even start (an executor shut down)
                sending = asyncio.get_running_loop().create_future()
                sending.set_exception(error)
            self._batches.add(sending)
            sending.add_done_callback(functools.partial(self._finished, batch))

    def _finished(
        self, batch: list[tuple[T, asyncio.Future[None], Settled | None]], task: asyncio.Future[Outcomes]
    ) -> None:
        self._in_flight -= 1
        self._batches.discard(task)
        if task.cancelled():
            # The outcome is unknown: ``settled`` is not called (idempotency entries expire).
            for _, future, _ in batch:
                future.cancel()
            self._start_batches()
            return
        outcomes: Outcomes
        if (error := task.exception()) is not None:
            outcomes = [error] * len(batch)
        else:
            outcomes = task.result()
        for (_, future, settled), outcome in zip(batch, outcomes, strict=True):
            if settled is not None:
                settled(outcome is None)
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
        self._start_batches()
