"""The README documents what the code does."""

from __future__ import annotations

from pathlib import Path

from stirfried.settings import reference_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_config_table_matches_the_settings_defaults():
    assert reference_table() in README


def test_readme_has_exactly_two_setup_commands():
    commands = [line for line in README.splitlines() if line.startswith("python3.11 -m venv")]
    assert len(commands) == 2
