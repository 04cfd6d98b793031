"""``chain``: tasks applied after the main task, in the seed's (reverse) order."""

from __future__ import annotations

from stirfried import protocol


async def test_chained_tasks_run_after_the_main_task_in_reverse_order(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task(
        {
            "task_name": "append",
            "args": [[], "main"],
            "chain": [
                {"task_name": "append", "args": ["first in array"]},
                {"task_name": "append", "args": ["last in array"]},
            ],
        }
    )

    await client.wait_for(lambda received: sum(1 for name, _ in received if name == protocol.ON_SUCCESS) == 3)

    # Each task's events come from whichever worker process ran it, so only the
    # results (each built on the one before) prove the run order.
    results = sorted((data["retval"] for name, data in client.events if name == protocol.ON_SUCCESS), key=len)
    assert results == [
        ["main"],
        ["main", "last in array"],
        ["main", "last in array", "first in array"],
    ]
    assert client.events_for(task_id)[0][1]["retval"] == ["main"]


async def test_chained_tasks_get_header_mapping_of_their_own_name(start_gateway, connect):
    gateway = await start_gateway(stirfried_header_task_map={"echo_kwargs": {"X-User": "user"}})
    client = await connect(gateway, headers={"X-User": "alice"})

    await client.send_task(
        {
            "task_name": "add",
            "args": [1, 2],
            "chain": [{"task_name": "echo_kwargs", "kwargs": {"user": "mallory"}}],
        }
    )

    await client.wait_for(
        lambda received: any(
            name == protocol.ON_SUCCESS and data["task_name"] == "echo_kwargs" for name, data in received
        )
    )
    echoed = next(
        data["retval"]
        for name, data in client.events
        if name == protocol.ON_SUCCESS and data["task_name"] == "echo_kwargs"
    )
    assert echoed == {"room": client.sid, "user": "alice"}
