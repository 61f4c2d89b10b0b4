"""LOG_FORMAT=json: one JSON object per log line, for log collectors (config/settings.py LOGGING)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from observability.context import session_id_var, user_id_var
from observability.tracing import current_ids


class JsonFormatter(logging.Formatter):
    """time (ISO 8601, UTC), level, logger, message, and where known request_id, user_id, session_id,
    trace_id, span_id; `exception` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id and request_id != "-":
            line["request_id"] = request_id
        if (user_id := user_id_var.get()) is not None:
            line["user_id"] = user_id
        if (session_id := session_id_var.get()) is not None:
            line["session_id"] = session_id
        if (ids := current_ids()) is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)
