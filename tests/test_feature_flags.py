"""``stirfried_enable_*`` remove routes and handlers entirely."""

from __future__ import annotations

import pytest
import socketio

from tests.helpers import url_of


async def test_http_disabled_removes_the_http_api(start_gateway, http, connect):
    gateway = await start_gateway(stirfried_enable_http=False)

    async with http.post(url_of(gateway, "/task"), json={"task_name": "add"}) as response:
        assert response.status == 404
    client = await connect(gateway)
    assert (await client.call("send_task", {"task_name": "add", "args": [1, 2]}))["status"] == "success"


async def test_socketio_disabled_removes_the_socketio_api(start_gateway, http):
    gateway = await start_gateway(stirfried_enable_socketio=False)
    client = socketio.AsyncClient(reconnection=False)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(str(gateway.make_url("/")), transports=["websocket"], wait_timeout=5)
    await client.shutdown()
    async with http.post(url_of(gateway, "/task"), json={"task_name": "add", "args": [1, 2]}) as response:
        assert response.status == 201


async def test_task_info_disabled_removes_get_and_the_event(start_gateway, http, connect, unique):
    gateway = await start_gateway(stirfried_enable_task_info=False)

    async with http.get(url_of(gateway, f"/task/some-id-{unique}")) as response:
        assert response.status == 405
    client = await connect(gateway)
    assert await client.call("task_info", f"some-id-{unique}") == {
        "status": "failed", "data": "unknown event 'task_info'",
    }  # fmt: skip
    async with http.delete(url_of(gateway, f"/task/some-id-{unique}")) as response:
        assert response.status == 200


async def test_revoke_disabled_removes_delete_and_the_event(start_gateway, http, connect, unique):
    gateway = await start_gateway(stirfried_enable_revoke_task=False)

    async with http.delete(url_of(gateway, f"/task/some-id-{unique}")) as response:
        assert response.status == 405
    client = await connect(gateway)
    assert (await client.call("revoke_task", f"some-id-{unique}"))["status"] == "failed"
    async with http.get(url_of(gateway, f"/task/some-id-{unique}")) as response:
        assert response.status == 404  # the route is there; the fleet never issued this id


async def test_example_page_is_served_only_when_configured(start_gateway, http):
    plain = await start_gateway()
    with_page = await start_gateway(stirfried_example_page=True)

    async with http.get(url_of(plain, "/")) as response:
        assert response.status == 404
    async with http.get(url_of(with_page, "/")) as response:
        assert response.status == 200
        assert '<script type="module" src="static/app.js">' in await response.text()
    for path in ("/static/app.js", "/static/vendor/stirfried-client/stirfried-client.js"):
        async with http.get(url_of(with_page, path)) as response:
            assert response.status == 200
            # browsers run module scripts only with a JavaScript MIME type
            assert response.content_type in ("text/javascript", "application/javascript")


async def test_example_page_loads_the_msgpack_client_for_a_msgpack_gateway(start_gateway, http):
    gateway = await start_gateway(stirfried_example_page=True, socketio_serializer="msgpack")

    async with http.get(url_of(gateway, "/")) as response:
        assert 'data-serializer="msgpack"' in await response.text()
    async with http.get(url_of(gateway, "/static/vendor/stirfried-client/msgpack-parser.js")) as response:
        assert response.status == 200
