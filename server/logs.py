"""Logging set-up: level and format from the configuration, secrets never written."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

# user:password@ in URLs (broker, Redis) -- the password becomes ***.
_URL_PASSWORD = re.compile(r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
# ?token=... in request lines (SSE subscription tokens, in the access log) -- the token becomes ***.
_QUERY_TOKEN = re.compile(r"(?P<prefix>[?&](?:token|access_token|auth)=)[^&\s\"']+")


def mask_secrets(text: str) -> str:
    """Replace passwords in URLs and tokens in query strings with ``***``."""
    return _QUERY_TOKEN.sub(r"\g<prefix>***", _URL_PASSWORD.sub(r"\g<prefix>***@", text))


class MaskingFormatter(logging.Formatter):
    """The standard one-line format, with secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(entry))


def configure_logging(level: str, json_lines: bool) -> None:
    """Send all logs to stderr (journald picks them up) in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
