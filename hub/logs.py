"""Logs: one event a line, with whatever `extra` a call site gave.

Two renderings of the same record: JSON objects for machines (the default when stderr is
not a terminal, or with `HUB_LOG_FORMAT=json`) and a readable line for a person at a
terminal (`HUB_LOG_FORMAT=text`, or a terminal by default):

    14:02:07.120 INFO  hub  hub ready  node_id=a1b2 database=embedded broker=in-process
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call site added with `extra=`."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


class TextFormatter(logging.Formatter):
    """Local time, level, logger, message, then key=value pairs; a traceback below."""

    def __init__(self, colour: bool = False):
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        level = f"{record.levelname:<5}"
        if self.colour:
            level = f"\x1b[{_COLOURS.get(record.levelname, '0')}m{level}\x1b[0m"
        line = f"{when} {level} {record.name}  {record.getMessage()}"
        pairs = " ".join(f"{key}={_value(value)}" for key, value in extras(record).items())
        if pairs:
            line += "  " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _value(value: object) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return repr(text) if (not text or " " in text or "=" in text) and isinstance(value, str) else text


def wants_text(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        return stream.isatty()
    return log_format == "text"


def configure(log_format: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger (uvicorn's too) to one handler on stderr in the chosen format."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    text = wants_text(log_format, stream)
    handler.setFormatter(TextFormatter(colour=stream.isatty()) if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("uvicorn.error").setLevel("WARNING")  # one line per socket drowns the rest


class Throttle:
    """At most one log line a `interval` for a message that a storm repeats thousands of
    times a second (refused joins during a reconnect storm): `allow()` says whether to log
    now and how many were held back since the last line."""

    __slots__ = ("held", "interval", "last")

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.last = float("-inf")
        self.held = 0

    def allow(self, now: float) -> int | None:
        if now - self.last < self.interval:
            self.held += 1
            return None
        held, self.held, self.last = self.held, 0, now
        return held
