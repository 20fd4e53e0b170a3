"""Structured logging for workers: a JSON formatter and the ``sitq`` command's log setup.

sitq never configures logging by itself when used as a library; its records carry their
context in ``extra`` fields (``task_id``, ``function``, ``attempt``, ``duration``, ``queue``,
``worker_id``) so any formatter can pick them up. `JSONFormatter` writes one JSON object per
line with every such field:

```json
{"time": "2024-05-01T12:00:00.123+00:00", "level": "INFO", "logger": "sitq.worker",
 "message": "task 3f… app:send succeeded in 0.012 s", "task_id": "3f…",
 "function": "app:send", "attempt": 1, "duration": 0.012}
```

"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any

#: Attributes every `logging.LogRecord` has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JSONFormatter(logging.Formatter):
    """Formats each record as one line of JSON, with its ``extra`` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object: time, level, logger, message, extras, traceback."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = _plain(value)
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        elif record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=repr)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def configure_logging(
    level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None
) -> None:
    """Send sitq's and the application's log records to ``stream`` (default: stderr).

    ``fmt`` is ``"text"`` (readable lines) or ``"json"`` (`JSONFormatter`). Replaces the
    handlers of the root logger: meant for the ``sitq`` command, not for libraries.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
