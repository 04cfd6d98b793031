"""``stirfried-server``: parse arguments, load the configuration, run the gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import resource
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from aiohttp import web

import stirfried
from stirfried.config import SOCKETIO_PREFIX, Config, config_path_from_environment, load_config
from stirfried.server.app import create_app
from stirfried.server.development.embedded_valkey import embedded_redis
from stirfried.server.development.example_worker import celery_worker, example_worker, route_example_tasks
from stirfried.server.http_connections import GatewayRunner
from stirfried.server.logs import configure_logging, mask_secrets
from stirfried.server.systemd import notify
from stirfried.settings import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# How long a stopping gateway waits for open requests before closing them.
SHUTDOWN_TIMEOUT = 10.0
SECRET_KEY_PARTS = ("password", "secret", "token")
# SIGHUP is a closed terminal: stop as for SIGTERM, leaving no worker or Valkey behind.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class PortInUse(Exception):
    """The gateway's port is taken."""


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {stirfried.__version__}")
    parser.add_argument(
        "--example-worker",
        action="store_true",
        help="also run a Celery worker with the example tasks (development)",
    )
    parser.add_argument(
        "--worker",
        action="append",
        default=[],
        metavar="MODULE",
        help="also run `celery -A MODULE worker` (e.g. your tasks.py: --worker tasks) with this "
        "gateway's configuration and services, from the current directory; repeatable (development)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print the effective settings (secrets masked), exit",
    )
    arguments = parser.parse_args(argv)
    if not arguments.config:
        parser.error("no configuration: pass --config PATH or set STIRFRIED_CONFIG")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        config = load_config(arguments.config)
        if arguments.check_config:
            create_app(config)  # runs every check the gateway makes at start, without I/O
            print(effective_settings(config), end="")
            return 0
        configure_logging(config.stirfried.log_level, config.stirfried.log_json)
        raise_open_file_limit()
        check_port_free(arguments.host, arguments.port)
        # Until serve() takes over, SIGTERM and SIGHUP unwind like Ctrl-C, so that
        # what has been started (Valkey, workers) is stopped.
        _handle_stop_signals(_interrupt)
        with contextlib.ExitStack() as stack:
            config = stack.enter_context(embedded_redis(config))
            if arguments.example_worker:
                config = route_example_tasks(config)
            app = create_app(config)
            if arguments.example_worker:
                stack.enter_context(example_worker(config, arguments.config))
            for module in arguments.worker:
                stack.enter_context(celery_worker(config, arguments.config, module, None, module))
            # Runs first on the way out: a second Ctrl-C (or a SIGHUP) must not cut
            # short stopping the workers, then Valkey.
            stack.callback(_handle_stop_signals, _stopping)
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(serve(app, arguments.host, arguments.port))
    except ConfigError as error:
        print(f"stirfried-server: configuration error: {error}", file=sys.stderr)
        return 2
    except PortInUse as error:
        print(f"stirfried-server: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUse (one line naming the port and --port) before anything starts."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return  # the server reports an unusable host itself
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise _port_in_use(host, port) from None
            raise


def _port_in_use(host: str, port: int) -> PortInUse:
    return PortInUse(
        f"port {port} on {host} is already in use (another gateway?); choose another with --port"
    )


def _interrupt(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stopping(signal_number: int, frame: object) -> None:
    """While the workers and Valkey stop: ignore further stop signals."""


def _handle_stop_signals(handler: Callable[[int, Any], None]) -> None:
    for signal_number in STOP_SIGNALS:
        signal.signal(signal_number, handler)


def raise_open_file_limit() -> None:
    """Let the gateway hold as many connections as the hard limit allows: each client is a
    descriptor, and the usual soft limit (1024) would turn away everyone at ~1000."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            logging.getLogger(__name__).warning("could not raise the open-file limit: %s", error)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (the ``server`` extra has it, except on
    Windows); it makes each socket write and each loop iteration cheaper, which is most
    of what relaying events costs. Otherwise asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM, SIGINT or SIGHUP, then shut down gracefully.

    systemd hears READY=1 once the port listens and STOPPING=1 when shutdown
    starts. Shutdown stops accepting, disconnects Socket.IO clients (they
    reconnect elsewhere), lets requests and Celery calls in flight finish within
    SHUTDOWN_TIMEOUT, then closes Redis and broker connections.
    """
    # Handlers first: a SIGTERM that comes right after READY=1 must be a graceful stop.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in STOP_SIGNALS:
        loop.add_signal_handler(signal_number, stop.set)
    runner = GatewayRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise _port_in_use(host, port) from None
            raise
        print(f"Stirfried gateway on http://{host}:{port} (Ctrl-C stops it)", flush=True)
        notify("READY=1")
        await stop.wait()
        notify("STOPPING=1")
    finally:
        await runner.cleanup()


def effective_settings(config: Config) -> str:
    """The configuration as the gateway uses it, in flat keys, as YAML with secrets masked."""
    flat: dict[str, Any] = config.as_flat()
    flat.update({SOCKETIO_PREFIX + key: value for key, value in config.socketio.items()})
    masked = {key: _masked(key, value) for key, value in sorted(flat.items())}
    return yaml.safe_dump(masked, sort_keys=False)


def _masked(key: str, value: Any) -> Any:
    """``value`` with every secret masked, at any depth (transport options nest)."""
    if any(part in key.lower() for part in SECRET_KEY_PARTS) and value:
        return "***"
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {inner: _masked(str(inner), item) for inner, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(key, item) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
