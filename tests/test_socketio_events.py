"""Every server-emitted event of the seed's table, with its exact payload.

Our events carry two more fields, ``event_id`` and ``timestamp``; ``seed_payload``
checks and strips them.
"""

from __future__ import annotations

from stirfried import protocol
from tests.helpers import seed_payload


async def test_add_task_emits_success_and_return_to_its_client(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "add", "args": [2, 3]})

    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)
    returned = await client.wait_for_event(protocol.ON_RETURN, task_id)

    assert seed_payload(success) == {"retval": 5, "task_id": task_id, "task_name": "add"}
    assert seed_payload(returned) == {
        "status": "SUCCESS",
        "retval": 5,
        "task_id": task_id,
        "task_name": "add",
    }
    assert (success["event_id"], returned["event_id"]) == (1, 2)


async def test_progress_events_arrive_in_order_with_current_total_and_info(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "progress", "args": [5]})
    await client.wait_for_event(protocol.ON_SUCCESS, task_id)

    progress = [data for name, data in client.events_for(task_id) if name == protocol.ON_PROGRESS]
    assert [data["event_id"] for data in progress] == [1, 2, 3, 4, 5]
    assert [seed_payload(data) for data in progress] == [
        {
            "current": step,
            "total": 5,
            "info": {"message": f"step {step}"},
            "task_id": task_id,
            "task_name": "progress",
        }
        for step in range(1, 6)
    ]


async def test_failure_emits_on_failure_and_on_return_without_error_info(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "fail", "args": ["boom"]})

    failure = await client.wait_for_event(protocol.ON_FAILURE, task_id)
    returned = await client.wait_for_event(protocol.ON_RETURN, task_id)

    assert seed_payload(failure) == {"task_id": task_id, "task_name": "fail"}
    assert seed_payload(returned) == {
        "status": "FAILURE",
        "retval": None,
        "task_id": task_id,
        "task_name": "fail",
    }
    assert protocol.ON_SUCCESS not in [name for name, _ in client.events_for(task_id)]


async def test_failure_events_carry_einfo_with_error_info_on(start_gateway, connect):
    gateway = await start_gateway(stirfried_error_info=True)
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "fail", "args": ["boom"]})

    failure = await client.wait_for_event(protocol.ON_FAILURE, task_id)
    returned = await client.wait_for_event(protocol.ON_RETURN, task_id)

    assert set(seed_payload(failure)) == {"task_id", "task_name", "einfo"}
    assert "Traceback" in failure["einfo"] and "ValueError: boom" in failure["einfo"]
    assert returned["retval"] == "ValueError: boom"


async def test_retry_emits_on_retry_then_succeeds(gateway, connect):
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "retry_once"})

    await client.wait_for_event(protocol.ON_RETURN, task_id)
    success = await client.wait_for_event(protocol.ON_SUCCESS, task_id)

    names = [name for name, _ in client.events_for(task_id)]
    assert names == [protocol.ON_RETRY, protocol.ON_SUCCESS, protocol.ON_RETURN]
    assert seed_payload(client.events_for(task_id)[0][1]) == {"task_id": task_id, "task_name": "retry_once"}
    # Numbered across both runs of the task, which may run on different worker processes.
    assert [data["event_id"] for _, data in client.events_for(task_id)] == [1, 2, 3]
    assert success["retval"] == "second attempt"


async def test_retry_event_carries_einfo_with_error_info_on(start_gateway, connect):
    gateway = await start_gateway(stirfried_error_info=True)
    client = await connect(gateway)
    task_id = await client.send_task({"task_name": "retry_once"})

    retry = await client.wait_for_event(protocol.ON_RETRY, task_id)

    assert "Traceback" in retry["einfo"] and "first attempt failed" in retry["einfo"]


async def test_a_second_client_never_receives_the_first_clients_events(gateway, connect):
    owner = await connect(gateway)
    bystander = await connect(gateway)
    task_id = await owner.send_task({"task_name": "progress", "args": [3]})
    own_task = await bystander.send_task({"task_name": "add", "args": [1, 1]})

    await owner.wait_for_event(protocol.ON_RETURN, task_id)
    await bystander.wait_for_event(protocol.ON_RETURN, own_task)

    assert owner.events_for(task_id)
    assert bystander.events_for(task_id) == []
    assert owner.events_for(own_task) == []
    assert {data["task_id"] for _, data in bystander.events} == {own_task}
