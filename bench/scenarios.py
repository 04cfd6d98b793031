"""The benchmark scenarios; each returns a dict of figures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import aiohttp
import celery
import redis.asyncio
import socketio

from bench.stats import summary
from stirfried import protocol
from stirfried.server.task_catalog import TaskCatalog


async def http_submissions(
    gateway_url: str, concurrency: int, seconds: float, idempotency_keys: bool = False
) -> dict[str, Any]:
    """``POST /task`` of a no-op task from ``concurrency`` loops for ``seconds`` (each with a
    fresh ``Idempotency-Key``, if asked)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                headers = {"Idempotency-Key": uuid.uuid4().hex} if idempotency_keys else None
                async with session.post(
                    gateway_url + "/task", json={"task_name": "noop"}, headers=headers
                ) as response:
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


WARM_UP_TASKS = 5


async def end_to_end(gateway_url: str, tasks: int) -> dict[str, Any]:
    """One client, sequential ``add`` tasks: emit ``send_task`` until ``on_success`` arrives."""
    client = socketio.AsyncClient()
    arrived: dict[str, asyncio.Future[None]] = {}
    loop = asyncio.get_running_loop()

    @client.on(protocol.ON_SUCCESS)
    async def on_success(payload: dict[str, Any]) -> None:
        arrived.setdefault(payload["task_id"], loop.create_future()).set_result(None)

    await client.connect(gateway_url, transports=["websocket"])
    latencies: list[float] = []
    began = time.perf_counter()
    for number in range(-WARM_UP_TASKS, tasks):
        if number == 0:
            latencies.clear()
            began = time.perf_counter()
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

    @client.on(protocol.ON_PROGRESS)
    async def on_progress(payload: dict[str, Any]) -> None:
        if not first:
            first.append(time.perf_counter())
        received.append(payload["current"])

    @client.on(protocol.ON_RETURN)
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


def event_log_cost(redis_url: str, count: int) -> dict[str, dict[str, Any]]:
    """What numbering and logging cost a worker: events/s and Redis memory, log on and off.

    Also python-socketio's own ``RedisManager.emit`` (one plain PUBLISH, what
    0.7.0 and our core did), as the figure without any of it.
    """
    import uuid

    import redis

    from stirfried.emitter import TaskEventEmitter

    def payload(task_id: str, step: int) -> dict[str, Any]:
        return protocol.progress(task_id, "flood", step, count, {"message": f"step {step}"})

    results: dict[str, dict[str, Any]] = {}
    client = redis.Redis.from_url(redis_url)
    for name, log in (("event_log_on", True), ("event_log_off", False)):
        emitter = TaskEventEmitter(redis_url, log_max_length=count, log_ttl=600, log_enabled=log)
        task_id = f"bench-{uuid.uuid4()}"
        began = time.perf_counter()
        for step in range(1, count + 1):
            emitter.emit(protocol.ON_PROGRESS, payload(task_id, step), task_id, None)
        elapsed = time.perf_counter() - began
        memory = client.memory_usage(protocol.event_log_key(task_id), samples=0) or 0
        client.delete(protocol.event_log_key(task_id), protocol.event_sequence_key(task_id))
        emitter.close()
        results[name] = {"per_second": count / elapsed, "bytes_per_1000_events": memory * 1000 / count}
    manager = socketio.RedisManager(redis_url, write_only=True)
    task_id = f"bench-{uuid.uuid4()}"
    began = time.perf_counter()
    for step in range(1, count + 1):
        manager.emit(protocol.ON_PROGRESS, payload(task_id, step), room=protocol.task_room(task_id))
    elapsed = time.perf_counter() - began
    results["socketio_manager_publish"] = {"per_second": count / elapsed, "bytes_per_1000_events": 0.0}
    client.close()
    return results


async def idle_clients(gateway_url: str, gateway_pid: int, count: int, e2e_tasks: int) -> dict[str, Any]:
    """``count`` idle websocket clients on one gateway: memory each, time to connect, e2e latency.

    The clients speak Engine.IO 4 / Socket.IO 5 over raw aiohttp websockets
    (connect, join the default namespace, answer pings): a python-socketio
    client object per connection would make the load generator the bottleneck.
    """
    import psutil

    gateway = psutil.Process(gateway_pid)
    before = gateway.memory_info().rss
    url = gateway_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    keepers: list[asyncio.Task[None]] = []
    failures = 0
    gate = asyncio.Semaphore(100)

    async def answer_pings(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                await ws.send_str("3")

    async def connect_one(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        async with gate:
            try:
                ws = await session.ws_connect(url, autoping=True)
                opened = await ws.receive_str(timeout=30)  # "0{sid, pingInterval, ...}"
                await ws.send_str("40")
                joined = await ws.receive_str(timeout=30)  # "40{sid}"
            except (aiohttp.ClientError, OSError, TimeoutError, TypeError):
                failures += 1
                return
            if not (opened.startswith("0") and joined.startswith("40")):
                failures += 1
                return
            sockets.append(ws)
            keepers.append(asyncio.create_task(answer_pings(ws)))

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(connect_one(session) for _ in range(count)))
        connect_seconds = time.perf_counter() - began
        await asyncio.sleep(2)  # let the gateway settle
        after = gateway.memory_info().rss
        latency = await end_to_end(gateway_url, e2e_tasks)
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    connected = len(sockets)
    return {
        "clients": connected,
        "errors": failures,
        "connect_seconds": connect_seconds,
        "kib_per_client": (after - before) / 1024 / connected if connected else float("nan"),
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "per_second": connected / connect_seconds if connect_seconds else 0.0,
    }


async def paired_end_to_end(ours_url: str, theirs_url: str, tasks: int) -> dict[str, dict[str, Any]]:
    """``end_to_end`` on two stacks at once, one task on each in turn, so that both see the
    same background load of a shared machine at the same moments: the fair comparison."""
    loop = asyncio.get_running_loop()
    clients: dict[str, socketio.AsyncClient] = {}
    arrived: dict[str, asyncio.Future[None]] = {}
    for name, url in (("ours", ours_url), ("theirs", theirs_url)):
        client = clients[name] = socketio.AsyncClient()

        @client.on(protocol.ON_SUCCESS)
        async def on_success(payload: dict[str, Any]) -> None:
            arrived.setdefault(payload["task_id"], loop.create_future()).set_result(None)

        await client.connect(url, transports=["websocket"])
    latencies: dict[str, list[float]] = {"ours": [], "theirs": []}
    for number in range(-WARM_UP_TASKS, tasks):
        for name, client in clients.items():
            started = time.perf_counter()
            reply = await client.call("send_task", {"task_name": "add", "args": [number, 1]})
            await asyncio.wait_for(arrived.setdefault(reply["data"], loop.create_future()), 30)
            if number >= 0:
                latencies[name].append(time.perf_counter() - started)
    for client in clients.values():
        await client.disconnect()
    return {name: summary(values, 1.0, 0) for name, values in latencies.items()}


async def catalog_reads(redis_url: str, workers: int, distinct: bool, reads: int) -> dict[str, Any]:
    """One gateway's catalog refresh with ``workers`` announcements (identical fleets share
    one task list; ``distinct``: each worker its own), as ``TaskCatalog`` reads it."""
    prefix = "bench-catalog-"
    tasks = [
        {"name": f"task_{index}", "doc": "x" * 80, "signature": "(x: int)", "parameters": {}}
        for index in range(20)
    ]
    async with redis.asyncio.Redis.from_url(redis_url) as client:
        now = time.time()
        async with client.pipeline(transaction=False) as pipe:
            for number in range(workers):
                digest = f"{prefix}{number if distinct else 0}"
                pipe.zadd(protocol.CATALOG_WORKERS_KEY, {f"{prefix}{number}": now + 60})
                pipe.hset(
                    protocol.CATALOG_ANNOUNCEMENTS_KEY,
                    f"{prefix}{number}",
                    json.dumps({"digest": digest, "queues": ["q"]}),
                )
                pipe.set(protocol.catalog_tasks_key(digest), json.dumps(tasks), ex=60)
            await pipe.execute()
        try:
            catalog = TaskCatalog(client, ttl=15)
            await catalog.refresh()  # the first read fetches the task lists
            latencies = []
            began = time.perf_counter()
            for _ in range(reads):
                started = time.perf_counter()
                await catalog.refresh()
                latencies.append(time.perf_counter() - started)
            elapsed = time.perf_counter() - began
        finally:
            names = [f"{prefix}{number}" for number in range(workers)]
            await client.zrem(protocol.CATALOG_WORKERS_KEY, *names)
            await client.hdel(protocol.CATALOG_ANNOUNCEMENTS_KEY, *names)
    return summary(latencies, elapsed, 0) | {"workers": workers, "tasks_listed": len(catalog.tasks())}


def inspect_registered(redis_url: str, calls: int) -> dict[str, Any]:
    """The alternative: Celery's remote control (``inspect().registered()``), one broadcast per
    refresh, waiting out its timeout (1 s) for the replies of every worker."""
    app = celery.Celery(broker=redis_url, set_as_current=False)
    latencies = []
    began = time.perf_counter()
    replies = 0
    for _ in range(calls):
        started = time.perf_counter()
        replies = len(app.control.inspect(timeout=1.0).registered() or {})
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - began
    app.close()
    return summary(latencies, elapsed, 0) | {"workers": replies}
