"""The wheel built from this checkout, installed as the docs say, in fresh virtual environments.

`pip install stirfried` from the package index is Stirfried 0.7.0; the docs install this
checkout or its wheel. These venvs get only what the wheel declares (no test tools), so a
dependency missing from setup.cfg fails here, as it would for a user. They install from the
package index, so they run where STIRFRIED_TEST_NETWORK=1 (.ci/run sets it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import stirfried
from tests import services

IMPORTS = "import kombu.transport.redis, stirfried.celery, stirfried.client, stirfried; print(stirfried.__version__)"


def _run(*command: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=600, **options
    )  # type: ignore[call-overload]


@pytest.mark.network
def test_the_built_wheel_installs_this_version_and_the_server_starts(tmp_path, redis_url):
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp_path / "dist",
                 services.REPOSITORY)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"stirfried-{stirfried.__version__}-py3-none-any.whl"
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    bin_ = venv / "bin"

    # A program talking to a gateway: the client extra.
    installed = _run(bin_ / "pip", "install", "--quiet", f"{wheel}[client]")
    assert installed.returncode == 0, installed.stderr
    imported = _run(bin_ / "python", "-c", IMPORTS)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == stirfried.__version__
    assert _run(bin_ / "python", "-c", "import pytest").returncode != 0  # nothing from the test venv
    assert _run(bin_ / "python", "-c", "import jwt").returncode != 0  # the client extra has no server
    for script in ("stirfried-server", "stirfried-token"):
        refused = _run(bin_ / script, "--config", "x.yaml")
        assert refused.returncode == 1
        assert "`server` extra" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    version = _run(bin_ / "stirfried-server", "--version")
    assert version.stdout.strip() == f"stirfried-server {stirfried.__version__}"

    # A gateway: the server extra; it starts and answers.
    installed = _run(bin_ / "pip", "install", "--quiet", f"{wheel}[server]")
    assert installed.returncode == 0, installed.stderr
    config = services.write_config(
        tmp_path / "gateway.yaml",
        {"broker_url": redis_url, "result_backend": redis_url, "stirfried_redis_url": redis_url,
         "stirfried_anonymous": True},
    )  # fmt: skip
    port = services.free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STIRFRIED_")}
    gateway = subprocess.Popen(
        [bin_ / "stirfried-server", "--config", config, "--port", str(port)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert gateway.poll() is None, gateway.stdout.read() if gateway.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the installed gateway did not become ready"
                time.sleep(0.3)
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        if gateway.stdout:
            gateway.stdout.close()
