"""Two gateway processes on one Redis: each client still gets exactly its own events."""

from __future__ import annotations

from stirfried import protocol
from tests import services


async def test_clients_of_two_gateway_processes_each_receive_only_their_own_events(
    start_gateway, gateway_config, connect, tmp_path, event_redis
):
    gateway = await start_gateway(**event_redis)
    config_path = services.write_config(tmp_path / "gateway-b.yaml", gateway_config(**event_redis))
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


async def relayed_events(http, url: str) -> float:
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("stirfried_events_relayed_total{")
    )


async def test_a_gateway_whose_clients_follow_nothing_receives_no_task_events(
    gateway_config, connect, http, tmp_path, event_redis
):
    config_path = services.write_config(tmp_path / "gateways.yaml", gateway_config(**event_redis))
    async with (
        services.gateway_process(config_path, tmp_path / "a.log") as gateway_a,
        services.gateway_process(config_path, tmp_path / "b.log") as gateway_b,
    ):
        on_a = await connect(gateway_a.url)
        idle_on_b = await connect(gateway_b.url)
        before_b = await relayed_events(http, gateway_b.url)

        tasks = [await on_a.send_task({"task_name": "progress", "args": [20]}) for _ in range(5)]
        for task_id in tasks:
            await on_a.wait_for_event(protocol.ON_RETURN, task_id)

        assert await relayed_events(http, gateway_a.url) >= 5 * 22
        assert await relayed_events(http, gateway_b.url) == before_b == 0
        assert idle_on_b.events == []
