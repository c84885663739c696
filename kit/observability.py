"""Logs and metrics.

- JSON log lines (one object per line) carrying the request id of the request that wrote
  them; :func:`configure_logging` sets it up once per process.
- :class:`RequestContextMiddleware` takes ``X-Request-ID`` from the caller (or makes one),
  echoes it on the response, and counts and times every request for Prometheus.
- uvicorn's access line (the gateway's one line per request) never carries a query
  string (:class:`DropQueryString`): query strings may hold personal values (a subject, a
  search term), and the path is enough to tell requests apart.
- The metrics are process-wide and labelled by ``app``, so several apps in one process (as
  in tests) share them without clashing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.outage import QuietDuringOutage

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["app", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request", ["app", "method", "route"]
)
OUTBOX_PENDING = Gauge("outbox_pending_events", "Outbox events not yet published", ["app"])
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox event", ["app"]
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox events published", ["app"])
OUTBOX_FAILURES = Counter("outbox_publish_failures_total", "Failed publish cycles", ["app"])
PERIODIC_TASK_RUNS = Counter(
    "periodic_task_runs_total", "Runs of a periodic task that completed", ["task"]
)
CONSUMER_EVENTS = Counter(
    "consumer_events_total", "Events a consumer took", ["consumer", "outcome"]
)

#: Label sets whose series a middleware keeps at hand (then it forgets them and looks again).
_MAX_SERIES_KEPT = 1024

_LOG_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := request_id_var.get():
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _LOG_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class DropQueryString(logging.Filter):
    """Strip the query string from uvicorn's access lines (their record args are
    ``(client, method, path_with_query, http_version, status)``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            if query:
                record.args = (*args[:2], path, *args[3:])
        return True


def configure_logging(
    *, level: str = "INFO", json_lines: bool = True, access_log: bool = False
) -> None:
    """One handler on the root logger for every line of the process. uvicorn's access line
    stays off unless ``access_log`` (the gateway's one line per request): a service logs
    its errors, not each request it serves."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(QuietDuringOutage())  # a broker outage is one line, not one per try
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))
    # httpx logs every request URL at INFO: query strings may hold personal data.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # one format for every line
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)  # the root's level, whatever uvicorn set before
        logger.propagate = name != "uvicorn.access" or access_log
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, DropQueryString) for f in access.filters):
        access.addFilter(DropQueryString())


class RequestContextMiddleware:
    """Request id in and out, plus request counts and latencies per route template."""

    def __init__(self, app: ASGIApp, *, app_name: str) -> None:
        self.app = app
        self.app_name = app_name
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "<unmatched>")
            key = (scope["method"], template, status)
            series = self._series.get(key)
            if series is None:
                series = self._series_of(key)
            series[0].inc()
            series[1].observe(time.perf_counter() - started)
            request_id_var.reset(token)

    def _series_of(self, key: tuple[str, str, int]) -> tuple[Counter, Histogram]:
        """The count and latency series of (method, route, status), looked up once: the
        client's labels() costs microseconds on every request."""
        if len(self._series) >= _MAX_SERIES_KEPT:
            self._series.clear()
        method, template, status = key
        series = (
            HTTP_REQUESTS.labels(self.app_name, method, template, str(status)),
            HTTP_LATENCY.labels(self.app_name, method, template),
        )
        self._series[key] = series
        return series
