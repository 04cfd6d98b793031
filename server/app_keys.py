"""Typed keys for the state the gateway keeps on its ``aiohttp.web.Application``."""

from __future__ import annotations

import socketio
from aiohttp import web

from stirfried.config import Config
from stirfried.server.celery_facade import CeleryFacade

CONFIG = web.AppKey("stirfried_config", Config)
CELERY = web.AppKey("stirfried_celery", CeleryFacade)
SOCKETIO = web.AppKey("stirfried_socketio", socketio.AsyncServer)
