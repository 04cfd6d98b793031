"""A Celery app with one task only it serves: the catalog tests start and stop its worker."""

from __future__ import annotations

from typing import Literal

from celery import Celery

from stirfried.celery import StirfriedTask, configure_from_file

app = Celery("stirfried-tests-catalog", task_cls=StirfriedTask)
configure_from_file(app)


@app.task(name="resize_image")
def resize_image(
    path: str,
    width: int,
    height: int = 100,
    mode: Literal["fit", "fill"] = "fit",
    tags: list[str] | None = None,
    room: str | None = None,
) -> dict[str, object]:
    """Resize the image at ``path``.

    This second paragraph is not shown in the catalog.
    """
    return {"path": path, "size": [width, height], "mode": mode, "tags": tags or []}
