"""The README documents what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from stirfried.settings import reference_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_config_table_matches_the_settings_defaults():
    assert reference_table() in README


def test_readme_has_exactly_two_setup_commands():
    blocks = re.findall(r"```sh\n(.*?)```", README.split("## HTTP API")[0], flags=re.DOTALL)
    assert [block.strip() for block in blocks] == [
        "python3 -c 'import sys; sys.exit(sys.version_info < (3, 11) and \"Stirfried needs Python 3.11 "
        "or newer as python3\")' && python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
        ".venv/bin/stirfried-server --config config/development.yaml --example-worker",
        "sh tools/run-tests.sh",
    ]


def test_the_first_command_is_the_block_ci_proves():
    """tools/prove-first-command.py runs the block after the marker; it must be the first one."""
    marker = README.index("<!-- first-command:")
    first_block = README.index("```sh\n")
    assert marker < first_block < README.index("\n", marker) + 2


def test_no_command_uses_a_python_that_current_systems_lack():
    for name in ("README.md", "deploy/README.md", "tools/run-tests.sh", ".ci/run"):
        text = (ROOT / name).read_text(encoding="utf-8")
        assert "python3.11 -m" not in text, name


def test_every_install_line_installs_this_version():
    """`pip install stirfried` from the index is 0.7.0: the docs install a checkout or its wheel."""
    for name in ("README.md", "deploy/README.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
        lines = [line for block in blocks for line in block.splitlines() if "pip install" in line]
        assert lines, name
        for line in lines:
            assert not re.search(r"pip install [\"']?stirfried\b", line), f"{name}: {line}"


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nsh tools/run-tests.sh\n" in ci


def test_ci_proves_the_first_command_before_the_tests():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\npython3 tools/prove-first-command.py\n" in ci
    assert ci.index("prove-first-command") < ci.index("\nsh tools/run-tests.sh\n")


def test_the_config_table_shows_list_defaults_as_they_are():
    from stirfried.settings import StirfriedSettings, reference_table

    table = reference_table(StirfriedSettings(trusted_proxies=("127.0.0.1", "::1")))

    assert "| `stirfried_trusted_proxies` | list of str | `[127.0.0.1, ::1]` |" in table


def test_no_proxy_is_trusted_by_default_and_the_docs_say_so():
    from stirfried.settings import StirfriedSettings

    assert StirfriedSettings().trusted_proxies == ()
    assert "| `stirfried_trusted_proxies` | list of str | `[]` |" in README
    limits_row = next(
        line for line in README.splitlines() if line.startswith("| `stirfried_trusted_proxies` | none")
    )
    assert "ignored" in limits_row
    deploy = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "no proxy is trusted by default" in deploy
