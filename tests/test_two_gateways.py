"""Two gateway processes on one Redis: each client still gets exactly its own events."""

from __future__ import annotations

from stirfried import protocol
from tests import services


async def test_clients_of_two_gateway_processes_each_receive_only_their_own_events(
    gateway, gateway_config, connect, tmp_path
):
    config_path = services.write_config(tmp_path / "gateway-b.yaml", gateway_config())
    async with services.gateway_process(config_path, tmp_path / "gateway-b.log") as gateway_b:
        on_a = await connect(gateway)
        on_b = await connect(gateway_b.url)

        task_a = await on_a.send_task({"task_name": "progress", "args": [3]})
        task_b = await on_b.send_task({"task_name": "progress", "args": [3]})

        await on_a.wait_for_event(protocol.ON_RETURN, task_a)
        await on_b.wait_for_event(protocol.ON_RETURN, task_b)

    assert [name for name, _ in on_a.events_for(task_a)] == [protocol.ON_PROGRESS] * 3 + [
        protocol.ON_SUCCESS, protocol.ON_RETURN,
    ]  # fmt: skip
    assert {data["task_id"] for _, data in on_a.events} == {task_a}
    assert {data["task_id"] for _, data in on_b.events} == {task_b}
