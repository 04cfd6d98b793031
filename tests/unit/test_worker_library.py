"""``StirfriedTask`` as a plain function: no Redis, no room, no crash."""

from __future__ import annotations

from celery import Celery

from stirfried.celery import StirfriedTask, configure_from_file


def make_app() -> Celery[StirfriedTask]:
    app = Celery("unit", task_cls=StirfriedTask, set_as_current=False)

    @app.task(bind=True, name="report", shared=False)
    def report(self: StirfriedTask, room: str | None = None) -> str:
        self.emit_progress(1, 2, info="half")
        return "done"

    return app


def test_task_without_redis_url_runs_as_a_plain_function():
    app = make_app()
    assert app.tasks["report"](room="some-room") == "done"
    assert app.tasks["report"].apply(kwargs={"room": "some-room"}).get() == "done"


def test_task_without_a_room_kwarg_does_not_emit_or_crash():
    app = make_app()
    app.conf.stirfried_redis_url = "redis://127.0.0.1:9/0"  # nothing listens there
    assert app.tasks["report"].apply().get() == "done"


def test_configure_from_file_puts_celery_and_stirfried_keys_in_app_conf(tmp_path, monkeypatch):
    path = tmp_path / "stirfried.yaml"
    path.write_text("celery: {task_default_queue: q1}\nstirfried: {error_info: true}\n")
    app = Celery("unit", set_as_current=False)
    monkeypatch.setenv("STIRFRIED_CONFIG", str(path))
    configure_from_file(app)
    assert app.conf.task_default_queue == "q1"
    assert app.conf.stirfried_error_info is True


def test_the_gateway_routes_exactly_the_example_tasks_to_their_queue(tmp_path, monkeypatch):
    """`--example-worker` routes the example tasks to a queue of their own; the example app
    (given that queue by the gateway) routes the tasks it publishes itself the same way."""
    import importlib
    import sys

    from stirfried.config import translate
    from stirfried.server.development.example_worker import EXAMPLE_QUEUE, EXAMPLE_TASKS, route_example_tasks

    config_file = tmp_path / "c.yaml"
    config_file.write_text("broker_url: memory://\n")
    monkeypatch.setenv("STIRFRIED_CONFIG", str(config_file))
    monkeypatch.setenv("STIRFRIED_EXAMPLE_QUEUE", EXAMPLE_QUEUE)
    sys.modules.pop("stirfried.examples", None)
    examples = importlib.import_module("stirfried.examples")
    sys.modules.pop("stirfried.examples", None)

    defined = {name for name, task in examples.app.tasks.items() if task.__module__ == "stirfried.examples"}
    assert defined == set(EXAMPLE_TASKS) == set(examples.EXAMPLE_TASKS)
    routed = route_example_tasks(
        translate({"task_routes": {"tasks.resize": {"queue": "images"}}}, environ={})
    )
    assert routed.celery["task_routes"] == {
        **{name: {"queue": EXAMPLE_QUEUE} for name in EXAMPLE_TASKS},
        "tasks.resize": {"queue": "images"},
    }
    assert examples.app.amqp.router.route({}, "count_to")["queue"].name == EXAMPLE_QUEUE
    assert examples.app.amqp.router.route({}, "tasks.resize")["queue"].name == "celery"
