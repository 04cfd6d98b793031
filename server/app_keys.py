"""Typed keys for the state the gateway keeps on its ``aiohttp.web.Application``."""

from __future__ import annotations

import redis.asyncio
import socketio
from aiohttp import web

from stirfried.config import Config
from stirfried.server.access import TaskAccess
from stirfried.server.auth import Authenticator
from stirfried.server.celery_facade import CeleryFacade
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.scheduler import TaskScheduler
from stirfried.server.subscriptions import TaskSubscriptions
from stirfried.server.tokens import SubscriptionTokens

CONFIG = web.AppKey("stirfried_config", Config)
CELERY = web.AppKey("stirfried_celery", CeleryFacade)
SOCKETIO = web.AppKey("stirfried_socketio", socketio.AsyncServer)
METRICS = web.AppKey("stirfried_metrics", GatewayMetrics)
READINESS_REDIS = web.AppKey("stirfried_readiness_redis", redis.asyncio.Redis)
SCHEDULER = web.AppKey("stirfried_scheduler", TaskScheduler)
SUBSCRIPTIONS = web.AppKey("stirfried_subscriptions", TaskSubscriptions)
TOKENS = web.AppKey("stirfried_tokens", SubscriptionTokens)
AUTH = web.AppKey("stirfried_auth", Authenticator)
ACCESS = web.AppKey("stirfried_access", TaskAccess)
