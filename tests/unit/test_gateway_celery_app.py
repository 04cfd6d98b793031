"""The gateway's Celery app never waits forever on a Redis broker that stopped answering."""

from __future__ import annotations

from stirfried.config import translate
from stirfried.server.app import gateway_celery_app


def test_a_redis_broker_gets_socket_timeouts_from_the_broker_timeout():
    app = gateway_celery_app(
        translate({"broker_url": "redis://broker:6379/0", "stirfried_broker_timeout": 3})
    )

    options = app.conf.broker_transport_options
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (3, 3)


def test_timeouts_in_the_config_win_and_other_options_stay():
    app = gateway_celery_app(
        translate(
            {
                "broker_url": "rediss://broker:6380/0",
                "broker_transport_options": {"socket_timeout": 30, "visibility_timeout": 60},
            },
            environ={},
        )
    )

    options = app.conf.broker_transport_options
    assert options["socket_timeout"] == 30 and options["visibility_timeout"] == 60
    assert options["socket_connect_timeout"] == 5.0  # the default stirfried_broker_timeout


def test_other_brokers_are_left_alone():
    app = gateway_celery_app(translate({"broker_url": "amqp://guest:guest@rabbit:5672//"}, environ={}))

    assert "socket_timeout" not in (app.conf.broker_transport_options or {})
