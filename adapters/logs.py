"""Logging, configured in one place: structlog, JSON lines in production, readable lines for humans.

Rules
- `configure_logging(format, level)` is called once by the CLI. Library loggers (websockets, asyncio) go
  through the same renderer, so one stream carries one format.
- Every log line about a station is bound with `station_id`, `side` (south/north) and `protocol`
  (`station_logger`). Core diagnostics are logged with their kind as the event name.
- Secrets never reach a log line: configuration secrets are `SecretStr`, and `_mask_secrets` replaces any
  value under a key that names a secret (password, authorization, token) as a last line of defence.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from bridge.effects import Side
from bridge.rpc import Diagnostic

_SECRET_WORDS = ("password", "authorization", "secret", "token")


def _mask_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in event:
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "**********"
    return event


def _json_dumps(value: Any, default: Any = None) -> str:
    return orjson.dumps(value, default=default).decode()


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # websockets logs every failed handshake at INFO/ERROR with tracebacks; we log those ourselves.
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))


def get_logger(name: str = "ocpp_bridge") -> Any:
    return structlog.get_logger(name)


def station_logger(station_id: str, side: Side | str, protocol: str) -> Any:
    side_name = side.value if isinstance(side, Side) else side
    return get_logger().bind(station_id=station_id, side=side_name, protocol=protocol)


_DIAGNOSTIC_KEYS = frozenset({"event", "detail", "message_id", "action"})


def log_diagnostic(log: Any, diagnostic: Diagnostic) -> None:
    """A core diagnostic as one warning line, its kind as the event name.

    Never raises: a field named like one of the line's own keys is logged as `field_<name>`."""
    fields = {
        f"field_{key}" if key in _DIAGNOSTIC_KEYS else key: value
        for key, value in diagnostic.fields.items()
    }
    log.warning(
        diagnostic.kind,
        detail=diagnostic.message,
        message_id=diagnostic.message_id,
        action=diagnostic.action,
        **fields,
    )
