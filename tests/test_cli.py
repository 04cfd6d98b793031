"""``stirfried-server`` as a user runs it: the README's run command, and bad config."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

import stirfried
from tests import services
from tests.helpers import post_task, url_of, wait_for_state

DEVELOPMENT_CONFIG = str(services.REPOSITORY / "config" / "development.yaml")


def _start(*arguments: str, cwd: Path = services.REPOSITORY) -> subprocess.Popen[str]:
    """The gateway in a session of its own, as a terminal runs it (Ctrl-C goes to its group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "stirfried.server", *arguments],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


async def _wait_until_serving(url: str, process: subprocess.Popen[str], task: str = "add") -> None:
    """Until the gateway is ready and a worker announced ``task`` (the catalog lists it):
    before that, the gateway refuses it, as no worker would run it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            await asyncio.to_thread(services.http_get, url_of(url, "/readyz"))
            catalog = await asyncio.to_thread(services.http_get, url_of(url, "/tasks"))
            if f'"name": "{task}"'.encode() in catalog:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"the gateway did not start serving, or no worker announced {task!r}")


async def _stop(process: subprocess.Popen[str], signal_number: int, group: bool = False) -> str:
    """Signal the gateway (or its whole process group, as Ctrl-C does); its output once it exited,
    after checking that every process it started is gone."""
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 2  # the Valkey server and the Celery worker (with its pool)
    if group:
        os.killpg(process.pid, signal_number)
    else:
        process.send_signal(signal_number)
    assert await asyncio.to_thread(process.wait, 45) == 0
    _, still_running = psutil.wait_procs(children, timeout=15)
    assert still_running == []
    return process.stdout.read() if process.stdout else ""


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if process.stdout:
        process.stdout.close()


async def test_run_command_serves_the_example_tasks_and_ctrl_c_stops_everything(http, tmp_path):
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = ("--config", DEVELOPMENT_CONFIG, "--example-worker", "--port", str(port))
    process = _start(*arguments, cwd=tmp_path)
    try:
        await _wait_until_serving(url, process)
        status, body = await post_task(http, url, {"task_name": "add", "args": [2, 3]})
        assert status == 201
        assert await wait_for_state(http, url, body["data"], timeout=60) == {
            "id": body["data"], "state": "SUCCESS", "result": 5,
        }  # fmt: skip

        # Ctrl-C while a task runs: the worker finishes it before Valkey stops, quietly.
        _, sleeping = await post_task(http, url, {"task_name": "sleep", "args": [2]})
        sleep_id = sleeping["data"]
        deadline = time.monotonic() + 30
        while (await wait_for_state(http, url, sleep_id, timeout=0))["state"] == "PENDING":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        output = await _stop(process, signal.SIGINT, group=True)
        assert f"Task sleep[{sleep_id}] succeeded" in output
        assert "Traceback" not in output and "Error" not in output, output
    finally:
        _kill(process)

    # A restart in the same directory keeps results and event logs (.stirfried/valkey).
    assert (tmp_path / ".stirfried" / "valkey").is_dir()
    process = _start(*arguments, cwd=tmp_path)
    try:
        await _wait_until_serving(url, process)
        assert await wait_for_state(http, url, sleep_id, timeout=0) == {
            "id": sleep_id, "state": "SUCCESS", "result": 2,
        }  # fmt: skip
        token = sleeping["token"]
        async with http.get(url_of(url, f"/task/{sleep_id}/events?token={token}")) as response:
            stream = await response.text()
        assert "event: on_return" in stream and '"synthesized"' not in stream

        # Closing the terminal (SIGHUP) stops everything like SIGTERM.
        await _stop(process, signal.SIGHUP)
    finally:
        _kill(process)


async def test_own_tasks_module_runs_through_the_readme_commands(http, tmp_path):
    """The README's path for a user's tasks.py: its module, its command, its curl example."""
    readme = (services.REPOSITORY / "README.md").read_text(encoding="utf-8")

    def block(marker: str) -> str:
        after = readme[readme.index(marker) :]
        return after.split("```", 2)[1].split("\n", 1)[1]

    (tmp_path / "tasks.py").write_text(block("<!-- example: tasks.py -->"))
    command = shlex.split(block("<!-- example: own-worker -->"))
    assert command[0] == ".venv/bin/stirfried-server" and "--worker" in command
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = [DEVELOPMENT_CONFIG if a == "config/development.yaml" else a for a in command[1:]]
    process = _start(*arguments, "--port", str(port), cwd=tmp_path)
    try:
        await _wait_until_serving(url, process)
        script = block("<!-- example: own-curl -->").replace("http://127.0.0.1:8000", url)
        deadline = time.monotonic() + 60
        while True:
            result = await asyncio.to_thread(
                subprocess.run, ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60
            )
            if '"state": "SUCCESS", "result": 42}' in result.stdout:
                break
            assert time.monotonic() < deadline, result.stdout + result.stderr
        # The example worker still runs the example tasks, and never took tasks.resize.
        _, body = await post_task(http, url, {"task_name": "add", "args": [1, 2]})
        assert (await wait_for_state(http, url, body["data"], timeout=30))["result"] == 3
        output = await _stop(process, signal.SIGINT, group=True)
        assert "unregistered" not in output
        assert re.search(r"tasks@\S+ ready", output) and re.search(r"stirfried-examples@\S+ ready", output)
    finally:
        _kill(process)


def test_a_busy_port_is_one_line_naming_the_port_and_the_option(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "stirfried.server", "--config", DEVELOPMENT_CONFIG,
             "--example-worker", "--port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"port {port}" in result.stderr and "--port" in result.stderr
    assert not (tmp_path / ".stirfried").exists()  # nothing was started


def test_version_is_the_packages():
    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server", "--version"], capture_output=True, text=True, timeout=60
    )

    assert result.stdout.strip() == f"stirfried-server {stirfried.__version__}"
    assert stirfried.__version__ == importlib.metadata.version("stirfried")


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
