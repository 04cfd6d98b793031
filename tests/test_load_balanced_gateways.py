"""Several gateways behind a load balancer, sharing Redis."""

from __future__ import annotations

import urllib.parse

from stirfried import protocol
from tests import services
from tests.helpers import post_task


async def test_custom_room_task_scheduled_on_gateway_b_reaches_a_client_on_gateway_a(
    start_gateway, gateway_config, connect, http, tmp_path
):
    gateway_a = await start_gateway(stirfried_custom_rooms=True)
    config_b = services.write_config(tmp_path / "b.yaml", gateway_config(stirfried_custom_rooms=True))
    async with services.gateway_process(config_b, tmp_path / "b.log") as gateway_b:
        client = await connect(gateway_a)

        _, body = await post_task(
            http, gateway_b.url, {"task_name": "add", "args": [5, 6], "room": client.sid}
        )

        assert (await client.wait_for_event(protocol.ON_SUCCESS, body["data"]))["retval"] == 11


async def test_clients_of_a_stopped_gateway_reconnect_to_another_and_go_on(gateway_config, connect, tmp_path):
    config = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    async with (
        services.gateway_process(config, tmp_path / "a.log") as gateway_a,
        services.gateway_process(config, tmp_path / "b.log") as gateway_b,
    ):
        balancer = services.SwitchableProxy(port_of(gateway_a.url))
        await balancer.start()
        try:
            client = await connect(f"http://127.0.0.1:{balancer.port}", reconnection=True)
            first = await client.send_task({"task_name": "add", "args": [1, 1]})
            await client.wait_for_event(protocol.ON_RETURN, first)
            sid_on_a = client.sid

            balancer.upstream_port = port_of(gateway_b.url)  # new connections go to B
            await gateway_a.stop()

            await client.wait_for(
                lambda _: client.sio.connected and client.sio.get_sid() != sid_on_a, timeout=20
            )
            second = await client.send_task({"task_name": "add", "args": [2, 2]})
            assert (await client.wait_for_event(protocol.ON_SUCCESS, second))["retval"] == 4
        finally:
            await balancer.close()


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port
