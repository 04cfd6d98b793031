"""The files in deploy/ are valid for the tools that read them."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stirfried.server.cli import parse_arguments

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
VENV_BIN = Path(sys.executable).parent


def instantiated_units(directory: Path) -> list[Path]:
    """Copies of the template units with an instance name, pointing at this machine's binaries."""
    units = []
    for template, instance in (
        ("stirfried-gateway@.service", "8001"),
        ("stirfried-worker@.service", "tasks"),
    ):
        text = (DEPLOY / template).read_text()
        text = text.replace("/opt/stirfried/venv/bin/", f"{VENV_BIN}/").replace(
            "/opt/tasks/venv/bin/", f"{VENV_BIN}/"
        )
        unit = directory / template.replace("@.", f"@{instance}.")
        unit.write_text(text)
        units.append(unit)
    return units


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_units_verify_cleanly(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, instantiated_units(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr + result.stdout


def test_gateway_unit_is_a_hardened_notify_service_the_cli_accepts():
    unit = (DEPLOY / "stirfried-gateway@.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}.items():
        assert settings[key] == value
    assert settings["User"] == "stirfried"
    assert settings["Environment"] == "STIRFRIED_CONFIG=/etc/stirfried/stirfried.yaml"
    for command in ("ExecStart", "ExecStartPre"):
        arguments = shlex.split(settings[command].replace("%i", "8001"))[1:]
        parsed = parse_arguments([*arguments, "--config", "/etc/stirfried/stirfried.yaml"])
        assert parsed.config == "/etc/stirfried/stirfried.yaml"


@pytest.mark.skipif(
    shutil.which("nginx") is None,
    reason="nginx is not installed here (tools/run-tests.sh installs it as root)",
)
def test_nginx_example_config_is_valid(tmp_path):
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{\n  access_log off;\n  include {DEPLOY / 'nginx.conf'};\n}}\n"
    )

    result = subprocess.run(["nginx", "-t", "-c", str(main)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
