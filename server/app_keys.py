"""Typed keys for the state the gateway keeps on its ``aiohttp.web.Application``."""

from __future__ import annotations

import redis.asyncio
import socketio
from aiohttp import web

from stirfried.config import Config
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.scheduler import TaskScheduler

CONFIG = web.AppKey("stirfried_config", Config)
CELERY = web.AppKey("stirfried_celery", CeleryFacade)
SOCKETIO = web.AppKey("stirfried_socketio", socketio.AsyncServer)
METRICS = web.AppKey("stirfried_metrics", GatewayMetrics)
READINESS_REDIS = web.AppKey("stirfried_readiness_redis", redis.asyncio.Redis)
SCHEDULER = web.AppKey("stirfried_scheduler", TaskScheduler)
