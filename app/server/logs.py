"""Log set-up: plain lines, or one JSON object per line for log collectors (``log_format``).

A record may carry structured ``fields`` (``logger.info(..., extra={"fields": {...}})``): the
text format has them in the message already; the JSON format puts them in as keys.
"""

from __future__ import annotations

import json
import logging
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """The root logger for the whole process (uvicorn's loggers included, see ``serve``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def key_values(fields: dict[str, Any]) -> str:
    """``a=1 b=x`` for the text format (values with spaces quoted)."""
    quoted = {k: json.dumps(v) if isinstance(v, str) and " " in v else v for k, v in fields.items()}
    return " ".join(f"{k}={v}" for k, v in quoted.items())
