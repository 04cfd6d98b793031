"""``stirfried-server`` as a user runs it: the README's run command, and bad config."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import psutil

from tests import services
from tests.helpers import post_task, url_of, wait_for_state


def _start(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stirfried.server", *arguments],
        cwd=services.REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def _wait_until_serving(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            await asyncio.to_thread(services.http_get, url_of(url, "/task/probe"))
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise AssertionError("the gateway did not start serving")


async def test_run_command_serves_the_example_tasks_and_ctrl_c_stops_everything(http):
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start("--config", "config/development.yaml", "--example-worker", "--port", str(port))
    try:
        await _wait_until_serving(url, process)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2  # the Valkey server and the Celery worker (with its pool)

        status, body = await post_task(http, url, {"task_name": "add", "args": [2, 3]})
        assert status == 201
        assert await wait_for_state(http, url, body["data"], timeout=60) == {
            "id": body["data"], "state": "SUCCESS", "result": 5,
        }  # fmt: skip

        process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 30) == 0
        _, still_running = psutil.wait_procs(children, timeout=15)
        assert still_running == []
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout:
            process.stdout.close()


def test_bad_config_stops_the_server_at_start_naming_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("stirfried:\n  error_info: sometimes\n")

    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "stirfried_error_info" in result.stderr and "bad.yaml" in result.stderr


def test_missing_config_file_is_named(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server", "--config", str(tmp_path / "nowhere.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "nowhere.yaml" in result.stderr
