"""The Stirfried gateway: an aiohttp application with a python-socketio server attached.

Read it as config -> :mod:`app` (the factory) -> :mod:`http_api` and
:mod:`socketio_api` -> :mod:`scheduling` and :mod:`celery_facade`.
"""

from stirfried.server.app import create_app

__all__ = ["create_app"]
