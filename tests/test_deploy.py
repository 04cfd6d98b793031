"""The files in deploy/ are valid for the tools that read them."""

from __future__ import annotations

import grp
import os
import re
import secrets as python_secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stirfried
from stirfried.server.cli import parse_arguments

REPOSITORY = Path(__file__).resolve().parent.parent
DEPLOY = REPOSITORY / "deploy"
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


# deploy/README.md's commands, run as written on this machine: root-only paths move
# into a temporary directory, `sudo` goes (the test user plays root and `stirfried`),
# and what needs a real systemd or root stays out (named here, tested elsewhere).
NOT_RUN_HERE = (
    "useradd ",  # creates a system user
    "systemctl ",  # needs systemd as PID 1; the units are checked by systemd-analyze above
    "nginx -t",  # test_nginx_example_config_is_valid
)


def _deploy_commands() -> list[list[str]]:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    return [block.strip().splitlines() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)]


def _as_run_here(line: str, root: Path) -> str:
    line = line.replace("sudo -u stirfried ", "").replace("sudo ", "")
    for path, moved in (
        ("/opt/", f"{root}/opt/"),
        ("/etc/stirfried", f"{root}/etc/stirfried"),
        ("/etc/systemd/system/", f"{root}/systemd/"),
        ("/etc/nginx/conf.d/", f"{root}/nginx/"),
    ):
        line = line.replace(path, moved)
    return line.replace("-g stirfried", f"-g {grp.getgrgid(os.getgid()).gr_name}")


def test_every_deploy_command_works_as_written(tmp_path):
    root = tmp_path
    for directory in ("systemd", "nginx"):
        (root / directory).mkdir()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STIRFRIED_")}
    environment["PATH"] = os.pathsep.join(
        part for part in environment["PATH"].split(os.pathsep) if part != str(VENV_BIN)
    )
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    secrets_block = re.search(r"```ini\n(.*?)```", text, flags=re.DOTALL)
    assert secrets_block is not None
    ran = []
    for block in _deploy_commands():
        for line in block:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            command = line.replace("sudo -u stirfried ", "").replace("sudo ", "")
            if any(command.startswith(skipped) for skipped in NOT_RUN_HERE):
                continue
            if "--check-config" in command:
                # The operator's secrets file, comments included, with the secrets the comment
                # says to generate.
                secrets = secrets_block.group(1).replace("=...", "={}")
                secrets = secrets.format(
                    *(python_secrets.token_urlsafe(32) for _ in range(secrets.count("{}")))
                )
                (root / "etc" / "stirfried" / "secrets.env").write_text(secrets)
            result = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", _as_run_here(line, root)],
                cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
            ran.append((line, result.stdout))
            if "--version" in line:
                assert result.stdout.strip() == line.split("# ", 1)[1].strip()
                assert result.stdout.strip() == f"stirfried-server {stirfried.__version__}"
            if "--check-config" in line:
                assert "stirfried_auth_secret: '***'" in result.stdout
                assert "secret@" not in result.stdout and secrets.split("STIRFRIED_AUTH_SECRET=")[1][
                    :20
                ] not in (result.stdout)
    assert any("--check-config" in line for line, _ in ran)
    assert any("pip install" in line for line, _ in ran)
    # The unit's Documentation= names a file that the steps above installed.
    unit = (DEPLOY / "stirfried-gateway@.service").read_text()
    documentation = re.search(r"^Documentation=file://(\S+)$", unit, flags=re.MULTILINE)
    assert documentation is not None
    assert Path(_as_run_here(documentation.group(1), root)).is_file()
    # The worker host's venv has the worker library of this version.
    version = subprocess.run(
        [str(root / "opt" / "tasks" / "venv" / "bin" / "python"), "-c",
         "import stirfried.celery, stirfried; print(stirfried.__version__)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert version.stdout.strip() == stirfried.__version__, version.stderr
