"""Read the one YAML file shared by gateway servers and worker hosts.

The file uses Stirfried 0.7.0's flat key names -- Celery settings as-is,
``socketio_*`` for the Socket.IO server, ``stirfried_*`` for our own settings --
or, equivalently, three sections::

    celery:    {broker_url: ...}      # same as  broker_url: ...
    socketio:  {ping_timeout: 10}     # same as  socketio_ping_timeout: 10
    stirfried: {error_info: true}     # same as  stirfried_error_info: true

:func:`translate` is the single place where that translation happens.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS

from stirfried.settings import (
    SETTINGS_PREFIX,
    ConfigError,
    StirfriedSettings,
    build_settings,
)

CONFIG_PATH_VARIABLE = "STIRFRIED_CONFIG"
SOCKETIO_PREFIX = "socketio_"
SECTIONS = {"celery": "", "socketio": SOCKETIO_PREFIX, "stirfried": SETTINGS_PREFIX}

# Secrets may come from the environment so they need not sit in the YAML file.
# An environment variable wins over the file.
ENVIRONMENT_OVERRIDES = {
    "STIRFRIED_BROKER_URL": "broker_url",
    "STIRFRIED_RESULT_BACKEND": "result_backend",
    "STIRFRIED_REDIS_URL": "stirfried_redis_url",
    "STIRFRIED_TOKEN_SECRET": "stirfried_token_secret",
    "STIRFRIED_AUTH_SECRET": "stirfried_auth_secret",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """The configuration file, split by who consumes it."""

    celery: Mapping[str, Any]
    """Celery settings, ready for ``app.conf.update``."""
    socketio: Mapping[str, Any]
    """``socketio.AsyncServer`` keyword arguments (prefix stripped)."""
    stirfried: StirfriedSettings
    source: str = ""
    """Where the configuration came from, for messages."""

    def with_celery(self, **overrides: Any) -> Config:
        """Return a copy with some Celery settings replaced."""
        return dataclasses.replace(self, celery={**self.celery, **overrides})

    def with_settings(self, **overrides: Any) -> Config:
        """Return a copy with some Stirfried settings replaced (already validated types)."""
        return dataclasses.replace(self, stirfried=dataclasses.replace(self.stirfried, **overrides))

    def as_flat(self) -> dict[str, Any]:
        """The flat-key form of this configuration (Celery keys plus ``stirfried_*``)."""
        flat = dict(self.celery)
        for field in dataclasses.fields(StirfriedSettings):
            value = getattr(self.stirfried, field.name)
            if isinstance(value, Mapping):
                value = {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            flat[SETTINGS_PREFIX + field.name] = value
        return flat


def config_path_from_environment(environ: Mapping[str, str] = os.environ) -> str | None:
    """The configuration path named by ``STIRFRIED_CONFIG``, if any."""
    return environ.get(CONFIG_PATH_VARIABLE) or None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] = os.environ) -> Config:
    """Read and validate a configuration file.

    Raises ConfigError naming the file (and key) when the file cannot be read,
    is not YAML, or holds an unknown key or a value of the wrong type.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{source}: cannot read configuration file: {error.strerror}") from error
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from error
    if raw is None:
        raw = {}
    return translate(raw, source=source, environ=environ)


def translate(raw: Any, source: str = "", environ: Mapping[str, str] = os.environ) -> Config:
    """Translate parsed YAML (flat or sectioned) into a validated :class:`Config`."""
    flat = flatten_sections(raw, source)
    for variable, key in ENVIRONMENT_OVERRIDES.items():
        if environ.get(variable):
            flat[key] = environ[variable]
    celery: dict[str, Any] = {}
    socketio: dict[str, Any] = {}
    stirfried: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith(SETTINGS_PREFIX):
            stirfried[key[len(SETTINGS_PREFIX) :]] = value
        elif key.startswith(SOCKETIO_PREFIX):
            socketio[key[len(SOCKETIO_PREFIX) :]] = value
        elif key in CELERY_DEFAULTS:
            celery[key] = value
        else:
            raise ConfigError(
                f"{source + ': ' if source else ''}unknown setting '{key}' "
                "(not a Celery setting, and not prefixed with socketio_ or stirfried_)"
            )
    return Config(
        celery=celery,
        socketio=socketio,
        stirfried=build_settings(stirfried, source),
        source=source,
    )


def flatten_sections(raw: Any, source: str = "") -> dict[str, Any]:
    """Turn the sectioned form into flat keys; flat keys pass through unchanged."""
    where = f"{source}: " if source else ""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}the configuration must be a mapping of settings")
    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in flat:
            raise ConfigError(f"{where}setting '{key}' is given twice")
        flat[key] = value

    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}setting names must be strings, got {key!r}")
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}section '{key}' must be a mapping")
            for inner_key, inner_value in value.items():
                put(SECTIONS[key] + str(inner_key), inner_value)
        else:
            put(key, value)
    return flat
