"""The publish batcher: what arrives while a batch is out leaves together, each caller gets its own outcome."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from stirfried.server.publish_batcher import Batcher, Outcomes, Settled


class Broker:
    """Records batches; each batch waits for ``release`` so tests can pile items up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.failing: set[int] = set()

    async def send(self, items: list[int]) -> Outcomes:
        self.batches.append(items)
        await self.release.wait()
        return [ValueError(f"item {item} failed") if item in self.failing else None for item in items]


async def test_items_arriving_while_a_batch_is_out_leave_together():
    broker = Broker()
    batcher = Batcher(broker.send, max_batch=100, max_in_flight=1)

    first = asyncio.create_task(batcher.send(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.send(item)) for item in range(1, 6)]
    await asyncio.sleep(0)
    assert batcher.waiting == 5
    broker.release.set()
    await asyncio.gather(first, *rest)

    assert broker.batches == [[0], [1, 2, 3, 4, 5]]


async def test_batches_are_capped_and_as_many_leave_as_may_be_in_flight():
    broker = Broker()
    batcher = Batcher(broker.send, max_batch=2, max_in_flight=2)

    sends = [asyncio.create_task(batcher.send(item)) for item in range(7)]
    for _ in range(3):  # let the sends queue and the first batches start
        await asyncio.sleep(0)
    # The first two leave at once (nothing to wait for), the rest queue behind them.
    assert broker.batches == [[0], [1]] and batcher.waiting == 5
    broker.release.set()
    await asyncio.gather(*sends)

    assert broker.batches == [[0], [1], [2, 3], [4, 5], [6]]


async def test_each_caller_gets_its_own_items_outcome():
    broker = Broker()
    broker.failing = {2}
    broker.release.set()
    batcher = Batcher(broker.send, max_batch=10, max_in_flight=1)

    outcomes = await asyncio.gather(*(batcher.send(item) for item in range(4)), return_exceptions=True)

    assert [type(outcome) for outcome in outcomes] == [type(None), type(None), ValueError, type(None)]
    assert str(outcomes[2]) == "item 2 failed"


async def test_a_batch_that_raises_fails_each_of_its_items_and_the_next_batch_goes_on():
    calls = 0

    async def send(items: list[int]) -> Outcomes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("broker went away")
        return [None] * len(items)

    batcher = Batcher(send, max_batch=10, max_in_flight=1)
    with pytest.raises(ConnectionError, match="broker went away"):
        await batcher.send(1)
    await batcher.send(2)


async def test_an_item_whose_caller_gave_up_while_waiting_is_never_sent():
    broker = Broker()
    batcher = Batcher(broker.send, max_batch=10, max_in_flight=1)
    first = asyncio.create_task(batcher.send(0))
    await asyncio.sleep(0)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.send(1), 0.01)
    broker.release.set()
    await first
    await batcher.send(2)

    assert broker.batches == [[0], [2]]


async def test_drain_waits_for_batches_that_have_left():
    broker = Broker()
    batcher = Batcher(broker.send, max_batch=10, max_in_flight=1)
    sending = asyncio.create_task(batcher.send(0))
    await asyncio.sleep(0)

    draining = asyncio.create_task(batcher.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()
    broker.release.set()
    await asyncio.wait_for(draining, 1)
    assert sending.done()


async def test_settled_learns_the_final_outcome_even_after_the_caller_gave_up():
    """Idempotent submits need the broker's final word after a 503: sent, failed, or never sent."""
    broker = Broker()
    broker.failing = {2}
    batcher = Batcher(broker.send, max_batch=100, max_in_flight=1)
    outcomes: dict[int, bool] = {}

    def settled(item: int) -> Settled:
        return lambda sent: outcomes.__setitem__(item, sent)

    sent = asyncio.create_task(batcher.send(0, settled(0)))  # its batch leaves at once
    await asyncio.sleep(0)
    queued = asyncio.create_task(batcher.send(1, settled(1)))  # waits behind it
    failing = asyncio.create_task(batcher.send(2, settled(2)))
    await asyncio.sleep(0)
    sent.cancel()  # the caller timed out after its batch left: the outcome is still the broker's
    queued.cancel()  # still queued: never sent
    await asyncio.sleep(0)
    assert outcomes == {1: False}

    broker.release.set()
    with pytest.raises(ValueError, match="item 2 failed"):
        await failing
    assert outcomes == {0: True, 1: False, 2: False}
    assert broker.batches == [[0], [2]]


async def test_a_batch_sent_through_a_thread_needs_no_task_of_its_own():
    """``send_batch`` may return the executor's future (what the gateway's publish does)."""
    loop = asyncio.get_running_loop()
    threads: list[str] = []

    def send_blocking(items: list[int]) -> Outcomes:
        threads.append(threading.current_thread().name)
        return [None if item % 2 == 0 else ValueError(f"odd {item}") for item in items]

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="publish") as executor:
        batcher: Batcher[int] = Batcher(
            lambda items: loop.run_in_executor(executor, send_blocking, items), max_batch=10, max_in_flight=1
        )
        outcomes = await asyncio.gather(*(batcher.send(item) for item in range(3)), return_exceptions=True)

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert threads and all(name.startswith("publish") for name in threads)


async def test_a_batch_that_cannot_even_start_fails_its_items_and_later_ones_still_go():
    calls = 0

    def send(items: list[int]) -> asyncio.Future[Outcomes]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()
        future.set_result([None] * len(items))
        return future

    batcher = Batcher(send, max_batch=10, max_in_flight=1)
    with pytest.raises(RuntimeError, match="after shutdown"):
        await batcher.send(1)
    await batcher.send(2)
    assert batcher.waiting == 0
