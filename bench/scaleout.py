"""Scale-out scenarios: what gateways spend on task events they deliver, and on those they do not.

Each gateway process's CPU time (user + system, from ``/proc`` through psutil)
is read before and after a flood of progress events; the load generator's
clients follow the flood's tasks on some gateways and nothing on the others.
The socket reads and sleeps of the gateways over the flood tell how many events each
wake-up carried: a gateway's cost per event depends on it, not only on its share.
Each gateway's idle CPU rate (measured for a few seconds before the flood, its
clients connected) times the flood's duration is reported apart, so the cost per
event is not diluted by what N idle event loops spend anyway on two cores.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psutil
import socketio

from bench.stack import Stack
from stirfried import protocol

IDLE_SECONDS = 2.0


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def wake_ups(pid: int) -> tuple[int, int]:
    """The process's read system calls and voluntary context switches so far: how often it
    read a socket, and how often it went to sleep waiting for one."""
    process = psutil.Process(pid)
    return process.io_counters().read_count, process.num_ctx_switches().voluntary


async def _flood_on(
    url: str, tasks: int, events: int
) -> tuple[socketio.AsyncClient, asyncio.Event, list[int]]:
    """A client on ``url`` that schedules ``tasks`` floods of ``events`` progress events each;
    returns it, an event set when all returned, and the count of progress events received."""
    client = socketio.AsyncClient()
    received = [0]
    returned: set[str] = set()
    done = asyncio.Event()

    @client.on(protocol.ON_PROGRESS)
    async def on_progress(payload: dict[str, Any]) -> None:
        received[0] += 1

    @client.on(protocol.ON_RETURN)
    async def on_return(payload: dict[str, Any]) -> None:
        returned.add(payload["task_id"])
        if len(returned) == tasks:
            done.set()

    await client.connect(url, transports=["websocket"])
    for _ in range(tasks):
        reply = await client.call("send_task", {"task_name": "flood", "args": [events]})
        assert reply["status"] == "success", reply
    return client, done, received


async def floods(stack: Stack, active: int, tasks_each: int, events_each: int) -> dict[str, Any]:
    """Clients on the first ``active`` gateways follow ``tasks_each`` floods each; a client on
    every other gateway follows nothing. CPU seconds of every gateway over the floods."""
    urls, pids = stack.gateway_urls, stack.gateway_pids
    idle = [socketio.AsyncClient() for _ in urls[active:]]
    # An idle client, so that gateways which listen only once a client connects (0.7.0) listen.
    await asyncio.gather(
        *(c.connect(url, transports=["websocket"]) for c, url in zip(idle, urls[active:], strict=True))
    )
    await asyncio.sleep(0.5)
    idle_start = [cpu_seconds(pid) for pid in pids]
    idle_began = time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    idle_rate = [
        (cpu_seconds(pid) - start) / (time.perf_counter() - idle_began)
        for pid, start in zip(pids, idle_start, strict=True)
    ]
    before = [cpu_seconds(pid) for pid in pids]
    woken = [wake_ups(pid) for pid in pids]
    began = time.perf_counter()
    running = await asyncio.gather(*(_flood_on(url, tasks_each, events_each) for url in urls[:active]))
    await asyncio.wait_for(asyncio.gather(*(done.wait() for _, done, _ in running)), 600)
    elapsed = time.perf_counter() - began
    spent = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
    counted = [wake_ups(pid) for pid in pids]
    reads = sum(now[0] - then[0] for now, then in zip(counted, woken, strict=True))
    sleeps = sum(now[1] - then[1] for now, then in zip(counted, woken, strict=True))
    delivered = sum(received[0] for _, _, received in running)
    net = [max(0.0, cpu - rate * elapsed) for cpu, rate in zip(spent, idle_rate, strict=True)]
    await asyncio.gather(*(client.disconnect() for client, _, _ in running), *(c.disconnect() for c in idle))
    return {
        "gateways": len(urls),
        "active": active,
        "events_delivered": delivered,
        "events_expected": active * tasks_each * events_each,
        "seconds": elapsed,
        "cpu_seconds": spent,
        "cpu_us_per_event": sum(spent) * 1e6 / delivered if delivered else float("nan"),
        "idle_cpu_per_second": idle_rate,
        "net_cpu_seconds": net,
        "net_cpu_us_per_event": sum(net) * 1e6 / delivered if delivered else float("nan"),
        # How many events each socket read and each sleep of a gateway carried, in all.
        "reads_per_event": reads / delivered if delivered else float("nan"),
        "sleeps_per_event": sleeps / delivered if delivered else float("nan"),
    }


async def idle_gateway(stack: Stack, tasks: int, events: int) -> dict[str, Any]:
    """Two gateways; clients on A follow ``tasks`` floods; gateway B's CPU against A's."""
    figures = await floods(stack, 1, tasks, events)
    a, b = figures["cpu_seconds"][:2]
    return {**figures, "cpu_a": a, "cpu_b": b, "b_over_a": b / a if a else float("nan")}
