"""Where events go: the scheduling client's room, the sentinel room, custom rooms."""

from __future__ import annotations

import asyncio

from stirfried import protocol
from tests.helpers import post_task, wait_for_state

# After a task's last event, how long we keep listening for events that must not come.
SETTLE_SECONDS = 0.5


async def settle_after(client, task_id):
    """Wait until the client's own marker task is done, then a little more."""
    await client.wait_for_event(protocol.ON_RETURN, task_id)
    await asyncio.sleep(SETTLE_SECONDS)


async def test_http_scheduled_task_emits_no_events(gateway, connect, http):
    client = await connect(gateway)
    _, body = await post_task(http, gateway, {"task_name": "progress", "args": [3]})
    assert (await wait_for_state(http, gateway, body["data"]))["state"] == "SUCCESS"

    await settle_after(client, await client.send_task({"task_name": "add", "args": [0, 0]}))

    assert client.events_for(body["data"]) == []


async def test_sentinel_room_disables_events_for_a_socketio_task(gateway, connect, http):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "progress", "args": [3], "room": "NO_EMIT"})
    assert (await wait_for_state(http, gateway, task_id))["state"] == "SUCCESS"

    await settle_after(client, await client.send_task({"task_name": "add", "args": [0, 0]}))

    assert client.events_for(task_id) == []


async def test_configured_sentinel_room_name_is_honoured(start_gateway, connect, http):
    gateway = await start_gateway(stirfried_sentinel_room="QUIET")
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "echo_kwargs", "room": "QUIET"})

    info = await wait_for_state(http, gateway, task_id)

    assert info["result"] == {"room": "QUIET"}


async def test_custom_room_is_ignored_when_custom_rooms_is_off(gateway, connect):
    owner = await connect(gateway)
    other = await connect(gateway)
    task_id = await owner.send_task({"task_name": "add", "args": [1, 2], "room": other.sid})

    await owner.wait_for_event(protocol.ON_RETURN, task_id)
    await settle_after(other, await other.send_task({"task_name": "add", "args": [0, 0]}))

    assert other.events_for(task_id) == []


async def test_custom_room_receives_the_events_when_custom_rooms_is_on(start_gateway, connect, http):
    gateway = await start_gateway(stirfried_custom_rooms=True)
    scheduler = await connect(gateway)
    watcher = await connect(gateway)

    task_id = await scheduler.send_task({"task_name": "add", "args": [1, 2], "room": watcher.sid})
    _, body = await post_task(http, gateway, {"task_name": "add", "args": [3, 4], "room": watcher.sid})

    assert (await watcher.wait_for_event(protocol.ON_SUCCESS, task_id))["retval"] == 3
    assert (await watcher.wait_for_event(protocol.ON_SUCCESS, body["data"]))["retval"] == 7
    await settle_after(scheduler, await scheduler.send_task({"task_name": "add", "args": [0, 0]}))
    assert scheduler.events_for(task_id) == []


async def test_a_custom_rooms_member_can_unsubscribe_from_a_task(start_gateway, connect, http):
    gateway = await start_gateway(stirfried_custom_rooms=True)
    scheduler = await connect(gateway)
    watcher = await connect(gateway)
    task_id = await scheduler.send_task(
        {"task_name": "slow_progress", "args": [20, 0.1], "room": watcher.sid}
    )
    await watcher.wait_for(lambda _: len(watcher.events_for(task_id)) >= 3)

    assert (await watcher.call("unsubscribe_task", task_id))["status"] == "success"
    count = len(watcher.events_for(task_id))
    await wait_for_state(http, gateway, task_id)
    await asyncio.sleep(SETTLE_SECONDS)

    assert len(watcher.events_for(task_id)) <= count + 1  # at most one already on its way
    assert protocol.ON_RETURN not in [name for name, _ in watcher.events_for(task_id)]


async def test_clients_cannot_choose_the_room_through_kwargs(gateway, connect, http):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "echo_kwargs", "kwargs": {"room": "elsewhere"}})

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)

    assert success["retval"] == {"room": client.sid}
