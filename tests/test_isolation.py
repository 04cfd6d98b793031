"""Fifty clients at once: every event reaches its task's owner (or subscribers) and nobody else."""

from __future__ import annotations

import asyncio

from stirfried import protocol

CLIENTS = 50
TASKS_EACH = 2


async def test_fifty_clients_each_get_exactly_their_own_events(start_gateway, connect, event_redis):
    # Anonymous clients share one rate-limit bucket per address, and all fifty are on 127.0.0.1.
    gateway = await start_gateway(stirfried_rate_limit=0, **event_redis)
    clients = await asyncio.gather(*(connect(gateway) for _ in range(CLIENTS)))

    async def schedule_all(client):
        return [await client.send_task({"task_name": "progress", "args": [3]}) for _ in range(TASKS_EACH)]

    owned = await asyncio.gather(*(schedule_all(client) for client in clients))
    for client, task_ids in zip(clients, owned, strict=True):
        await client.wait_for(
            lambda _, c=client, ids=task_ids: all(
                any(name == protocol.ON_RETURN for name, _ in c.events_for(task_id)) for task_id in ids
            ),
            timeout=60,
        )

    leaks = {
        index: sorted({data.get("task_id") for _, data in client.events} - set(task_ids))
        for index, (client, task_ids) in enumerate(zip(clients, owned, strict=True))
    }
    assert {index: leaked for index, leaked in leaks.items() if leaked} == {}
    for client, task_ids in zip(clients, owned, strict=True):
        for task_id in task_ids:
            # 3 progress events, on_success, on_return: each exactly once.
            assert [data["event_id"] for _, data in client.events_for(task_id)] == [1, 2, 3, 4, 5]
