"""``stirfried-server``: parse arguments, load the configuration, run the gateway."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from stirfried.config import config_path_from_environment, load_config
from stirfried.server.app import create_app
from stirfried.server.embedded_redis import embedded_redis
from stirfried.server.example_worker import example_worker
from stirfried.settings import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# How long a stopping gateway waits for open requests before closing them.
SHUTDOWN_TIMEOUT = 10.0


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stirfried-server",
        description="Real-time Socket.IO and HTTP gateway between clients and Celery.",
    )
    parser.add_argument(
        "--config",
        default=config_path_from_environment(),
        help="YAML configuration file (default: $STIRFRIED_CONFIG)",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.add_argument(
        "--example-worker",
        action="store_true",
        help="also run a Celery worker with the example tasks (development)",
    )
    arguments = parser.parse_args(argv)
    if not arguments.config:
        parser.error("no configuration: pass --config PATH or set STIRFRIED_CONFIG")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(arguments.config)
        with contextlib.ExitStack() as stack:
            config = stack.enter_context(embedded_redis(config))
            app = create_app(config)
            if arguments.example_worker:
                stack.enter_context(example_worker(config, arguments.config))
            web.run_app(
                app,
                host=arguments.host,
                port=arguments.port,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
                print=_announce,
            )
    except ConfigError as error:
        print(f"stirfried-server: configuration error: {error}", file=sys.stderr)
        return 2
    return 0


def _announce(message: str) -> None:
    print(message.replace("======== ", "").replace(" ========", ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
