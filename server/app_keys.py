"""Typed keys for the state the gateway keeps on its ``aiohttp.web.Application``.

Which ``cleanup_ctx`` generator of :mod:`stirfried.server.app` owns (opens and
closes) each value is noted beside it.
"""

from __future__ import annotations

import redis.asyncio
import socketio
from aiohttp import web

from stirfried.config import Config
from stirfried.server.caller import Callers
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.limits import ConnectionCounter, RateLimiter
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.scheduling import TaskScheduler
from stirfried.server.subscriptions import TaskSubscriptions
from stirfried.server.task_access import TaskAccess
from stirfried.server.task_catalog import TaskCatalog
from stirfried.server.task_channels import TaskChannels
from stirfried.server.task_operations import TaskOperations

# Set by create_app (nothing to open or close).
CONFIG = web.AppKey("stirfried_config", Config)
METRICS = web.AppKey("stirfried_metrics", GatewayMetrics)
CALLERS = web.AppKey("stirfried_callers", Callers)
SOCKETIO = web.AppKey("stirfried_socketio", socketio.AsyncServer)
# Owned by app.celery_facade.
CELERY = web.AppKey("stirfried_celery", CeleryFacade)
# Owned by app.redis_client (absent without stirfried_redis_url).
REDIS = web.AppKey("stirfried_redis", redis.asyncio.Redis)
# Owned by app.task_channels (absent without stirfried_redis_url).
CHANNELS = web.AppKey("stirfried_channels", TaskChannels)
# Owned by health.readiness_redis.
READINESS_REDIS = web.AppKey("stirfried_readiness_redis", redis.asyncio.Redis)
# Built by app.task_services from the resources above.
ACCESS = web.AppKey("stirfried_access", TaskAccess)
BUDGET = web.AppKey("stirfried_budget", RateLimiter)
# Long-lived connections per address: Socket.IO clients and SSE streams.
CONNECTIONS = web.AppKey("stirfried_connections", ConnectionCounter)
SCHEDULER = web.AppKey("stirfried_scheduler", TaskScheduler)
OPERATIONS = web.AppKey("stirfried_operations", TaskOperations)
# Owned by app.task_services (its refresh runs while the gateway serves).
CATALOG = web.AppKey("stirfried_catalog", TaskCatalog)
SUBSCRIPTIONS = web.AppKey("stirfried_subscriptions", TaskSubscriptions)
