"""The benchmark scenarios; each returns a dict of figures."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
import celery
import socketio

from bench.stats import summary
from stirfried import events


async def http_submissions(gateway_url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """``POST /task`` of a no-op task from ``concurrency`` loops for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(gateway_url + "/task", json={"task_name": "noop"}) as response:
                    await response.read()
                    if response.status == 201:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return summary(latencies, elapsed, errors)


async def socketio_acks(gateway_url: str, clients: int, seconds: float) -> dict[str, Any]:
    """``send_task`` with acknowledgement, one loop per websocket client."""
    connected = [socketio.AsyncClient() for _ in range(clients)]
    await asyncio.gather(*(c.connect(gateway_url, transports=["websocket"]) for c in connected))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop(client: socketio.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            reply = await client.call("send_task", {"task_name": "noop", "room": "NO_EMIT"}, timeout=30)
            if reply.get("status") == "success":
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in connected))
    elapsed = time.perf_counter() - began
    await asyncio.gather(*(c.disconnect() for c in connected))
    return summary(latencies, elapsed, errors)


async def end_to_end(gateway_url: str, tasks: int) -> dict[str, Any]:
    """One client, sequential ``add`` tasks: emit ``send_task`` until ``on_success`` arrives."""
    client = socketio.AsyncClient()
    arrived: dict[str, asyncio.Future[None]] = {}
    loop = asyncio.get_running_loop()

    @client.on(events.ON_SUCCESS)
    async def on_success(payload: dict[str, Any]) -> None:
        arrived.setdefault(payload["task_id"], loop.create_future()).set_result(None)

    await client.connect(gateway_url, transports=["websocket"])
    latencies: list[float] = []
    began = time.perf_counter()
    for number in range(tasks):
        started = time.perf_counter()
        reply = await client.call("send_task", {"task_name": "add", "args": [number, 1]})
        await asyncio.wait_for(arrived.setdefault(reply["data"], loop.create_future()), 30)
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - began
    await client.disconnect()
    return summary(latencies, elapsed, 0)


async def progress_flood(gateway_url: str, count: int) -> dict[str, Any]:
    """One task emitting ``count`` progress events: events/s received, and events lost."""
    client = socketio.AsyncClient()
    received: list[int] = []
    done = asyncio.Event()
    first: list[float] = []

    @client.on(events.ON_PROGRESS)
    async def on_progress(payload: dict[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter())
        received.append(payload["current"])

    @client.on(events.ON_RETURN)
    async def on_return(payload: dict[str, Any]) -> None:
        done.set()

    await client.connect(gateway_url, transports=["websocket"])
    await client.call("send_task", {"task_name": "flood", "args": [count]})
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - first[0] if first else float("nan")
    await client.disconnect()
    return {
        "events": len(received),
        "lost": count - len(set(received)),
        "in_order": received == sorted(received),
        "per_second": len(received) / elapsed if elapsed else 0.0,
    }


def bare_send_task(redis_url: str, seconds: float) -> dict[str, Any]:
    """The floor: a single-thread loop of Celery's own ``send_task`` on the same broker."""
    app = celery.Celery(broker=redis_url, set_as_current=False)
    app.conf.task_default_queue = "stirfried-bench"
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        app.send_task("noop", kwargs={"room": "NO_EMIT"})
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - began
    app.close()
    return summary(latencies, elapsed, 0) | {"thread": threading.current_thread().name}
