"""The JavaScript client (``js/``, npm package ``stirfried-client``) against the real gateway.

Starts Valkey (the session fixture) and the example worker, writes two gateway
configurations (anonymous, and one that requires tokens), then runs the node
tests in ``js/test/gateway/`` with ``node --test``. Those start and stop gateway
processes themselves (``<python> -m stirfried.server --config PATH --port P``),
so that one can restart the gateway on the same port in the middle of a task.
Needs Node.js 20+ and ``npm ci`` in ``js/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests import services

JS = services.REPOSITORY / "js"
EXAMPLE_QUEUE = "stirfried-js-examples"
AUTH_SECRET = "js-sdk-tests-auth-secret-of-at-least-32-bytes"
NODE_TIMEOUT = 120


@pytest.fixture(scope="module")
def js_configs(redis_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("js-sdk")
    anonymous: dict[str, Any] = {
        "broker_url": broker_url,
        "result_backend": redis_url,
        "task_default_queue": EXAMPLE_QUEUE,
        "worker_prefetch_multiplier": 1,
        "stirfried_redis_url": redis_url,
        "stirfried_anonymous": True,
        "stirfried_error_info": True,
        "stirfried_celery_events": True,
        # Lets a test send a task's events to another client (its sid), as if they overtook the reply.
        "stirfried_custom_rooms": True,
        # catalog.test.js delays a task and terminates one.
        "stirfried_task_options": ["countdown"],
        "stirfried_terminate": True,
        # Gateways restarted by a test must accept the subscription tokens of the first.
        "stirfried_token_secret": "js-sdk-tests-token-secret",
        "stirfried_log_level": "WARNING",
    }
    tokens = {**anonymous, "stirfried_anonymous": False, "stirfried_auth_secret": AUTH_SECRET}
    return {
        "anonymous": services.write_config(directory / "anonymous.yaml", anonymous),
        "tokens": services.write_config(directory / "tokens.yaml", tokens),
        "msgpack": services.write_config(
            directory / "msgpack.yaml", {**anonymous, "socketio_serializer": "msgpack"}
        ),
    }


@pytest.fixture(scope="module")
def example_worker(js_configs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``celery -A stirfried.examples worker`` with two processes, on a queue of its own."""
    config = js_configs["anonymous"]
    services.purge_queues(services.load_config(config).celery["broker_url"], [EXAMPLE_QUEUE])
    log = tmp_path_factory.mktemp("js-sdk-worker") / "worker.log"
    with services.celery_worker(config, EXAMPLE_QUEUE, log, concurrency=2, app="stirfried.examples"):
        yield


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js, and the package's npm dependencies (checked before any service starts)."""
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node not found: the JavaScript client's tests need Node.js 20 or newer")
    if not (JS / "node_modules").is_dir():
        pytest.fail(f"{JS / 'node_modules'} is missing: run `npm ci` in js/ (js/ci.sh does)")
    return executable


def test_javascript_client_against_the_real_gateway(
    node: str, js_configs: dict[str, Path], example_worker: None
) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "js-tests", "exp": now + 3600, "tasks": ["*"]}, AUTH_SECRET, algorithm="HS256")
    environment = {
        **os.environ,
        "STIRFRIED_PYTHON": sys.executable,
        "STIRFRIED_CONFIG_ANONYMOUS": str(js_configs["anonymous"]),
        "STIRFRIED_CONFIG_TOKENS": str(js_configs["tokens"]),
        "STIRFRIED_CONFIG_MSGPACK": str(js_configs["msgpack"]),
        "STIRFRIED_TEST_TOKEN": token,
        "STIRFRIED_TEST_AUTH_SECRET": AUTH_SECRET,
    }
    build = subprocess.run(
        ["npm", "run", "--silent", "build"],
        cwd=JS,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert build.returncode == 0, f"npm run build failed:\n{build.stdout}\n{build.stderr}"
    # Its own process group: gateways the node tests start go with it, whatever happens.
    tests = subprocess.Popen(
        [node, "--test", "--test-concurrency=1", "--test-timeout=30000", "--test-reporter=spec", "test/gateway/"],
        cwd=JS, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = tests.communicate(timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(tests.pid, signal.SIGKILL)
        output, _ = tests.communicate()
        pytest.fail(f"node --test did not finish within {NODE_TIMEOUT} s:\n{output}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tests.pid, signal.SIGKILL)
    assert tests.returncode == 0, f"node --test failed ({tests.returncode}):\n{output}"
