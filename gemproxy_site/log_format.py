"""``LOG_FORMAT=json``: every log line one JSON object, for log collectors.

The object has ``time``, ``level``, ``logger`` and ``message``, then whatever the
caller passed as ``extra`` (the gateway's line per call passes the call's fields),
then ``exception`` with the traceback when there is one. It imports nothing from
Django, so that the headless executor (``executors.agent``) can use it too.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Attributes every LogRecord has: the rest came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = _plain(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: a client's text in a message cannot carry a raw newline or a
        # terminal escape into the log; json.dumps escapes both anyway.
        return json.dumps(entry, ensure_ascii=True)


def use_json_logs(level: int | str = logging.INFO) -> None:
    """Root logging as JSON lines on stderr: for processes that do not use Django's LOGGING."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
