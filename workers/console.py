"""The console scripts, checked for the ``server`` extra before the gateway is imported.

``stirfried-server`` and ``stirfried-token`` live in ``stirfried.server``, which needs
aiohttp, PyJWT and prometheus-client. A worker host or a client installs Stirfried
without them; there the scripts print what to install instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

import stirfried

SERVER_MODULES = ("aiohttp", "jwt", "prometheus_client")


def missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def _needs_server_extra(program: str) -> int | None:
    missing = missing_server_modules()
    if not missing:
        return None
    if "--version" in sys.argv[1:]:
        print(f"{program} {stirfried.__version__}")
        return 0
    print(
        f"{program}: needs Stirfried's `server` extra (missing: {', '.join(missing)}); "
        "install it with: pip install '<this Stirfried>[server]', e.g. "
        "pip install '/path/to/stirfried-checkout[server]'",
        file=sys.stderr,
    )
    return 1


def server() -> int:
    """``stirfried-server``."""
    status = _needs_server_extra("stirfried-server")
    if status is not None:
        return status
    from stirfried.server.cli import main

    return main()


def token() -> int:
    """``stirfried-token``."""
    status = _needs_server_extra("stirfried-token")
    if status is not None:
        return status
    from stirfried.server.token_cli import main

    return main()
