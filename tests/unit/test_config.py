"""Translating the YAML file: flat and sectioned forms, defaults, errors naming the key."""

from __future__ import annotations

import dataclasses

import pytest

from stirfried.config import load_config, translate
from stirfried.server.app import check_serializers
from stirfried.server.socketio_options import socketio_options
from stirfried.settings import ConfigError, StirfriedSettings


def test_flat_and_sectioned_forms_translate_to_the_same_config():
    flat = translate(
        {"broker_url": "redis://b", "socketio_ping_timeout": 7, "stirfried_error_info": True},
        environ={},
    )
    sectioned = translate(
        {
            "celery": {"broker_url": "redis://b"},
            "socketio": {"ping_timeout": 7},
            "stirfried": {"error_info": True},
        },
        environ={},
    )
    assert flat == sectioned
    assert flat.celery == {"broker_url": "redis://b"}
    assert flat.socketio == {"ping_timeout": 7}
    assert flat.stirfried.error_info is True


def test_defaults_are_those_of_stirfried_0_7_0():
    settings = translate({}, environ={}).stirfried
    assert settings == StirfriedSettings()
    assert (settings.enable_http, settings.enable_socketio) == (True, True)
    assert (settings.enable_task_info, settings.enable_revoke_task) == (True, True)
    assert settings.redis_url == ""
    assert settings.available_tasks == ()
    assert settings.error_info is False
    assert settings.sentinel_room == "NO_EMIT"
    assert settings.custom_rooms is False
    assert dict(settings.header_task_map) == {}


def test_settings_are_frozen():
    settings = translate({}, environ={}).stirfried
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.error_info = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"stirfried_colour": "red"}, "stirfried_colour"),
        ({"stirfried": {"custom_room": True}}, "stirfried_custom_room"),
        ({"stirfried_error_info": "yes"}, "stirfried_error_info"),
        ({"stirfried_available_tasks": "add"}, "stirfried_available_tasks"),
        ({"stirfried_header_task_map": {"t": {"Date": 5}}}, "stirfried_header_task_map"),
        ({"stirfried_executor_threads": 0}, "stirfried_executor_threads"),
        ({"brokr_url": "redis://"}, "brokr_url"),
        ({"celery": {"broker_url": "a"}, "broker_url": "b"}, "broker_url"),
        ({"celery": ["broker_url"]}, "celery"),
    ],
)
def test_bad_config_names_the_key(raw, named):
    with pytest.raises(ConfigError, match=named):
        translate(raw, source="gateway.yaml", environ={})


def test_unreadable_file_names_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("stirfried: [unclosed")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(broken)


def test_environment_overrides_secrets_from_the_file():
    config = translate(
        {"broker_url": "amqp://file", "stirfried_redis_url": "redis://file"},
        environ={"STIRFRIED_BROKER_URL": "amqp://env", "STIRFRIED_REDIS_URL": "redis://env"},
    )
    assert config.celery["broker_url"] == "amqp://env"
    assert config.stirfried.redis_url == "redis://env"


def test_socketio_options_pass_through_and_unknown_ones_are_named():
    config = translate({"socketio_ping_timeout": 3, "socketio_max_http_buffer_size": 9}, environ={})
    assert socketio_options(config) == {"ping_timeout": 3, "max_http_buffer_size": 9}
    with pytest.raises(ConfigError, match="socketio_ping_timout"):
        socketio_options(translate({"socketio_ping_timout": 3}, environ={}))
    with pytest.raises(ConfigError, match="socketio_async_mode"):
        socketio_options(translate({"socketio_async_mode": "threading"}, environ={}))


def test_gateway_refuses_pickle():
    with pytest.raises(ConfigError, match="accept_content"):
        check_serializers(translate({"accept_content": ["json", "pickle"]}, environ={}))
    with pytest.raises(ConfigError, match="task_serializer"):
        check_serializers(translate({"task_serializer": "pickle"}, environ={}))


def test_shipped_config_files_are_valid():
    for name in ("config/development.yaml", "config/production.example.yaml"):
        config = load_config(name, environ={})
        check_serializers(config)
        socketio_options(config)
