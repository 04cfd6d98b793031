"""The README documents what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from stirfried.settings import reference_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_config_table_matches_the_settings_defaults():
    assert reference_table() in README


def test_readme_has_exactly_two_setup_commands():
    blocks = re.findall(r"```sh\n(.*?)```", README.split("## HTTP API")[0], flags=re.DOTALL)
    assert [block.strip() for block in blocks] == [
        "python3.11 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
        ".venv/bin/stirfried-server --config config/development.yaml --example-worker",
        "sh tools/run-tests.sh",
    ]


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nsh tools/run-tests.sh\n" in ci
