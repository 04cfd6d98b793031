"""The gateway as an operator runs it: systemd notify, --check-config, logs, SIGTERM under load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp

from tests import services
from tests.helpers import wait_for_state


def start_gateway_process(config_path, port, **environment):
    return subprocess.Popen(
        [sys.executable, "-m", "stirfried.server", "--config", str(config_path), "--port", str(port)],
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_systemd_hears_ready_once_listening_and_stopping_on_sigterm(gateway_config, tmp_path, workers):
    config_path = services.write_config(tmp_path / "gateway.yaml", gateway_config())
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.bind(notify_path)
        notify_socket.settimeout(30)
        port = services.free_port()
        process = start_gateway_process(config_path, port, NOTIFY_SOCKET=notify_path)
        try:
            ready = await asyncio.to_thread(notify_socket.recv, 256)
            assert ready == b"READY=1"
            assert accepts_connections(port)

            process.send_signal(signal.SIGTERM)
            stopping = await asyncio.to_thread(notify_socket.recv, 256)
            assert stopping == b"STOPPING=1"
            assert await asyncio.to_thread(process.wait, 30) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()


def test_check_config_prints_effective_settings_with_secrets_masked(tmp_path):
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(
        "broker_url: amqp://stirfried:hunter2@rabbit:5672//\n"
        "stirfried:\n  redis_url: redis://:s3cret@redis:6379/0\n  error_info: true\n"
        "  auth_secret: a-secret-of-at-least-32-bytes-for-hs256\n"
    )

    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server", "--check-config", "--config", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "broker_url: amqp://stirfried:***@rabbit:5672//" in result.stdout
    assert "stirfried_redis_url: redis://:***@redis:6379/0" in result.stdout
    assert "stirfried_error_info: true" in result.stdout
    assert "stirfried_auth_secret: '***'" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr and "s3cret" not in result.stdout + result.stderr
    assert "a-secret-of" not in result.stdout + result.stderr


def test_check_config_fails_naming_the_bad_key(tmp_path):
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text("accept_content: [json, pickle]\n")

    result = subprocess.run(
        [sys.executable, "-m", "stirfried.server", "--check-config", "--config", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "accept_content" in result.stderr and "pickle" in result.stderr


async def test_json_logs_have_a_line_per_scheduled_task_and_no_secrets(
    gateway_config, tmp_path, workers, http
):
    broker = gateway_config()["broker_url"]
    config = gateway_config(stirfried_log_json=True)
    config_path = services.write_config(tmp_path / "gateway.yaml", config)
    port = services.free_port()
    process = start_gateway_process(config_path, port)
    try:
        deadline = time.monotonic() + 30
        while not accepts_connections(port):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        async with http.post(url + "/task", json={"task_name": "add", "args": [1, 2]}) as response:
            task_id = (await response.json())["data"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)

    entries = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    scheduled = [entry for entry in entries if entry["message"].startswith("scheduled task add")]
    assert len(scheduled) == 1
    assert f"id={task_id}" in scheduled[0]["message"] and "api=http" in scheduled[0]["message"]
    assert {"time", "level", "logger", "message"} <= set(scheduled[0])
    if "@" in broker:  # a broker URL with credentials never appears in clear
        assert broker not in stderr


async def test_sigterm_during_a_burst_loses_no_accepted_task(gateway, gateway_config, tmp_path):
    config_path = services.write_config(tmp_path / "gateway.yaml", gateway_config(stirfried_rate_limit=0))
    port = services.free_port()
    process = start_gateway_process(config_path, port)
    url = f"http://127.0.0.1:{port}"
    accepted: list[str] = []
    refused = 0
    try:
        deadline = time.monotonic() + 30
        while not accepts_connections(port):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

        async def submit(session: aiohttp.ClientSession, number: int) -> None:
            nonlocal refused
            await asyncio.sleep(number * 0.005)
            try:
                async with session.post(
                    url + "/task", json={"task_name": "add", "args": [number, 1]}
                ) as response:
                    body = await response.json()
                    if response.status == 201:
                        accepted.append(body["data"])
                    else:
                        assert response.status == 503 and body["status"] == "failed"
                        refused += 1
            except aiohttp.ClientConnectionError:
                refused += 1

        async def terminate_midway() -> None:
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)

        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(terminate_midway(), *(submit(session, n) for n in range(300)))
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()

    assert accepted and refused, (len(accepted), refused)  # the signal really came mid-burst
    assert len(accepted) + refused == 300
    async with aiohttp.ClientSession() as http:
        for task_id in accepted:
            assert (await wait_for_state(http, gateway, task_id))["state"] == "SUCCESS"


def test_url_passwords_are_masked_in_log_text():
    from stirfried.server.logs import mask_secrets

    assert mask_secrets("amqp://user:pa55@host:5672// and redis://:pw@r:6379/0") == (
        "amqp://user:***@host:5672// and redis://:***@r:6379/0"
    )
    assert mask_secrets("redis://host:6379/0") == "redis://host:6379/0"
