"""Session-wide real services and per-test gateways and clients.

Three workers run the tasks of ``tests/worker_app.py``, as three fleets
sharing one configuration file each would: the default one; one with
``stirfried_error_info`` on (the worker, not the gateway, decides what its
events contain); one with msgpack task and result serializers and a result
backend of its own (the backend is read with the reader's serializer, and a
revoke makes every worker record REVOKED, so fleets that disagree on the
serializer must not share a backend).
A gateway's settings pick the matching queue. The event tests run twice
(:func:`event_redis`): with task events on the one Redis, and on a real
three-node Valkey Cluster, with a worker fleet of its own (Celery's broker and
result backend stay on the one Redis: Celery cannot use a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from blockbuster import blockbuster_ctx

from stirfried.config import translate
from stirfried.server.app import create_app
from stirfried.server.http_connections import GatewayRunner
from tests import services
from tests.clients import EventClient

QUIET_QUEUE = "stirfried-tests"
VERBOSE_QUEUE = "stirfried-tests-verbose"
MSGPACK_QUEUE = "stirfried-tests-msgpack"
# A fleet whose task events go to a Redis Cluster.
CLUSTER_QUEUE = "stirfried-tests-cluster"
# A fleet with Celery lifecycle events on and a tiny, short-lived event log.
LIFECYCLE_QUEUE = "stirfried-tests-lifecycle"
LIFECYCLE_SETTINGS = {
    "stirfried_celery_events": True,
    "stirfried_event_log_max_length": 5,
    "stirfried_event_log_ttl": 3,
}
MSGPACK_SERIALIZERS = {"task_serializer": "msgpack", "result_serializer": "msgpack"}

GatewayFactory = Callable[..., Awaitable[TestServer]]
ClientFactory = Callable[..., Awaitable[EventClient]]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with services.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def broker_url(redis_url: str) -> str:
    """``STIRFRIED_TEST_BROKER_URL`` (e.g. RabbitMQ) if set, else the Redis server."""
    return os.environ.get("STIRFRIED_TEST_BROKER_URL") or redis_url


@pytest.fixture(scope="session")
def base_config(redis_url: str, broker_url: str) -> dict[str, Any]:
    """The flat configuration every gateway and worker of the test run shares."""
    return {
        "broker_url": broker_url,
        "result_backend": redis_url,
        "task_default_queue": QUIET_QUEUE,
        "accept_content": ["json", "msgpack"],
        "result_accept_content": ["json", "msgpack"],
        "worker_prefetch_multiplier": 1,
        "stirfried_redis_url": redis_url,
        # Most tests act as the anonymous clients of Stirfried 0.7.0; tests/test_auth.py does not.
        "stirfried_anonymous": True,
    }


@pytest.fixture(scope="session")
def workers(base_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    directory = tmp_path_factory.mktemp("workers")
    msgpack_results = services.next_database(base_config["result_backend"])
    fleets = {
        QUIET_QUEUE: (base_config, 4),
        VERBOSE_QUEUE: ({**base_config, "stirfried_error_info": True}, 2),
        MSGPACK_QUEUE: ({**base_config, **MSGPACK_SERIALIZERS, "result_backend": msgpack_results}, 2),
        LIFECYCLE_QUEUE: ({**base_config, **LIFECYCLE_SETTINGS}, 2),
    }
    services.purge_queues(base_config["broker_url"], list(fleets))
    with contextlib.ExitStack() as stack:
        for queue, (config, concurrency) in fleets.items():
            path = services.write_config(directory / f"{queue}.yaml", config)
            stack.enter_context(
                services.celery_worker(path, queue, directory / f"{queue}.log", concurrency=concurrency)
            )
        yield


@pytest.fixture(scope="session")
def cluster_settings(
    base_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A three-node Valkey Cluster for task events, and a worker fleet that emits to it;
    yields the settings that point a gateway at it."""
    directory = tmp_path_factory.mktemp("cluster")
    with services.redis_cluster(directory / "nodes") as cluster_url:
        settings = {"stirfried_redis_url": cluster_url, "stirfried_redis_cluster": True}
        config = {**base_config, **settings, "task_default_queue": CLUSTER_QUEUE}
        services.purge_queues(base_config["broker_url"], [CLUSTER_QUEUE])
        path = services.write_config(directory / "worker.yaml", config)
        with services.celery_worker(path, CLUSTER_QUEUE, directory / "worker.log", concurrency=2):
            yield settings


@pytest.fixture(params=["single", "cluster"])
def event_redis(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Gateway settings for task events on one Redis, or on a Redis Cluster."""
    if request.param == "single":
        return {}
    settings: dict[str, Any] = request.getfixturevalue("cluster_settings")
    return settings


@pytest.fixture
def gateway_config(base_config: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Build a flat gateway configuration; keyword arguments are flat keys to override."""

    def build(**overrides: Any) -> dict[str, Any]:
        config = {**base_config, **overrides}
        if config.get("stirfried_redis_cluster"):
            config["task_default_queue"] = CLUSTER_QUEUE
        elif config.get("stirfried_celery_events"):
            config["task_default_queue"] = LIFECYCLE_QUEUE
        elif config.get("stirfried_error_info"):
            config["task_default_queue"] = VERBOSE_QUEUE
        elif config.get("result_serializer") == "msgpack":
            config["task_default_queue"] = MSGPACK_QUEUE
            config["result_backend"] = services.next_database(base_config["result_backend"])
        return config

    return build


class GatewayTestServer(TestServer):
    """aiohttp's test server, serving through the gateway's runner as ``stirfried-server`` does."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return GatewayRunner(self.app, **kwargs)


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[web.Application], Awaitable[TestServer]]]:
    """Serve applications on real ports as ``stirfried-server`` does; closed afterwards."""
    servers: list[TestServer] = []

    async def serve(app: web.Application) -> TestServer:
        server = GatewayTestServer(app)
        servers.append(server)
        await server.start_server()
        return server

    yield serve
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def start_gateway(
    workers: None,
    serve_app: Callable[[web.Application], Awaitable[TestServer]],
    gateway_config: Callable[..., dict[str, Any]],
) -> GatewayFactory:
    """Start an in-process gateway (real aiohttp server on a real port)."""

    async def start(**overrides: Any) -> TestServer:
        # As the CLI does, build the app before serving it (create_app is synchronous).
        app = await asyncio.to_thread(create_app, translate(gateway_config(**overrides)))
        return await serve_app(app)

    return start


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> TestServer:
    return await start_gateway()


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture
async def connect() -> AsyncIterator[ClientFactory]:
    """Connect python-socketio clients that record every event; disconnected afterwards."""
    clients: list[EventClient] = []

    async def open_client(server: TestServer | str, **options: Any) -> EventClient:
        url = server if isinstance(server, str) else str(server.make_url("/"))
        client = EventClient(**options)
        clients.append(client)
        await client.connect(url)
        return client

    yield open_client
    for client in clients:
        await client.disconnect()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(autouse=True)
def no_blocking_calls_on_the_event_loop() -> Iterator[None]:
    """Fail a test in which the gateway's code makes a blocking call on the event loop.

    Only calls with a ``stirfried`` frame on the stack count: tests and their
    helpers may block on purpose (they start services, read files).
    """
    with blockbuster_ctx(scanned_modules=["stirfried", "stirfried.server"]):
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that need the package index run only where STIRFRIED_TEST_NETWORK=1 (CI sets it).
    if os.environ.get("STIRFRIED_TEST_NETWORK") != "1":
        offline = [item for item in items if item.get_closest_marker("network") is None]
        config.hook.pytest_deselected(items=[item for item in items if item not in offline])
        items[:] = offline
    # Unit tests first: they fail fast without starting any service.
    items.sort(key=lambda item: 0 if "/unit/" in str(Path(str(item.fspath))) else 1)
