"""Logging set-up: level and format from the configuration, secrets never written."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

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


# python-socketio and python-engineio log what a client's malformed frame raises as
# an ERROR with a traceback ("message async handler error"), and aiohttp what its HTTP
# parser refuses ("Error handling request"). Those are the client's mistakes, not the
# server's. Each logger, with what parsing a malformed message raises there
# (UnicodeDecodeError, json's and msgpack's errors are ValueErrors):
CLIENT_MISTAKES: dict[str, tuple[type[Exception], ...]] = {
    "engineio.server": (ValueError, TypeError, KeyError, IndexError),
    "socketio.server": (ValueError, TypeError, KeyError, IndexError),
    "aiohttp.server": (HttpProcessingError,),
}
# At most this many of them are written per window; the rest are counted.
CLIENT_MISTAKES_PER_WINDOW = 10
CLIENT_MISTAKE_WINDOW = 60.0


def one_line(text: str) -> str:
    """A message on one line (aiohttp's parser errors span several, with a caret line
    pointing at the bad byte)."""
    lines = (line.strip() for line in text.splitlines())
    return " ".join(line for line in lines if line and set(line) != {"^"})


class ClientMistakes(logging.Filter):
    """Turns an exception python-socketio or python-engineio logs while handling a
    client's frame into one brief, rate-limited warning without the traceback."""

    def __init__(self, mistakes: tuple[type[Exception], ...]) -> None:
        super().__init__()
        self._mistakes = mistakes
        self._window_start = 0.0
        self._written = 0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None or record.levelno < logging.ERROR:
            return True
        error = record.exc_info[1]
        if not isinstance(error, self._mistakes):
            return True  # anything else may be a real server error: keep its traceback
        if record.created - self._window_start > CLIENT_MISTAKE_WINDOW:
            self._window_start, self._written, dropped = record.created, 0, self._dropped
            self._dropped = 0
        else:
            dropped = 0
        if self._written >= CLIENT_MISTAKES_PER_WINDOW:
            self._dropped += 1
            return False
        self._written += 1
        suffix = f" ({dropped} more in the last minute not shown)" if dropped else ""
        record.msg = "a client sent a message the gateway refused: %s: %s" + suffix
        record.args = (type(error).__name__, one_line(str(error)))
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


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
    for name, mistakes in CLIENT_MISTAKES.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ClientMistakes)]:
            logger.removeFilter(old)
        logger.addFilter(ClientMistakes(mistakes))
