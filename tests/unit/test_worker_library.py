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
