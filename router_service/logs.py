"""Log output: plain text (default) or one JSON object per line (``log_format: json``).

JSON lines carry ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``pid``,
``message``, the fields a call site attaches with ``extra=`` (``request_id``, ``router``), and
``trace_id`` + ``span_id`` when the line is written inside a recorded span (tracing on), so a log
line leads to its trace. Messages never hold prompt text, tokens or keys: the code
that logs never passes them (tests grep every line of a run for a marker prompt).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Literal

from opentelemetry import trace

__all__ = ["EXTRA_FIELDS", "JsonFormatter", "configure"]

EXTRA_FIELDS = ("request_id", "router", "version")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, object] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value:
                doc[name] = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            doc["trace_id"] = f"{span.trace_id:032x}"
            doc["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Configure the root logger once per process (later calls replace the handler)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
