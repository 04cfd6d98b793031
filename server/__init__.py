"""The Stirfried gateway: an aiohttp application with a python-socketio server attached.

Read it in the order a request meets it: :mod:`cli` -> :mod:`app` (the factory
and the resources) -> :mod:`http_api` / :mod:`socketio_api` -> :mod:`caller`
(who is asking) -> :mod:`scheduling` -> :mod:`celery_facade` ->
:mod:`publish_batcher`; and a worker's event: :mod:`event_relay` ->
:mod:`subscriptions`. docs/architecture.md is the map.
"""

from stirfried.server.app import create_app

__all__ = ["create_app"]
