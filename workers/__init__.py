"""Stirfried: a real-time Socket.IO and HTTP gateway between clients and Celery.

This root package is the worker library (``stirfried.celery``) and the shared
configuration code; the gateway itself is ``stirfried.server``.
"""

__version__ = "1.0.0.dev0"
