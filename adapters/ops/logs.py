"""Logging, configured in one place: structlog, JSON lines in production, readable lines for humans.

Rules
- `configure_logging(format, level)` is called once by the CLI. Library loggers (websockets, asyncio) go
  through the same renderer, so one stream carries one format.
- Every log line about a station is bound with `station_id`, `side` (south/north) and `protocol`
  (`station_logger`). Core diagnostics are logged with their kind as the event name.
- Secrets never reach a log line: configuration secrets are `SecretStr`, and `_mask_secrets` replaces any
  value under a key that names a secret (password, authorization, token) as a last line of defence.
- A log line is bounded whatever a peer sends (`bound_values`, in the chain of every line): a string
  value longer than `MAX_VALUE_CHARS` keeps its beginning and says how long it was
  (`'unknown action 'MakeCoffee…' …(5000 chars)`); bytes likewise; a list, tuple, set or dict keeps
  its first `MAX_ITEMS` items (then `…(n items)`), nested containers down to `MAX_DEPTH`. The event
  name and the traceback of an exception are left whole (they come from the code, not from peers).
- Repeated diagnostics are rate-limited per station, side and kind (`DiagnosticLimiter`, one per
  `adapters.driver.CoreDriver`): `DIAGNOSTIC_BURST` lines per `DIAGNOSTIC_INTERVAL` seconds, the rest
  counted; the next line logged of that kind carries `suppressed=n`, and what is still counted when
  a connection of the station ends is logged then as one `diagnostics.suppressed` line per kind.
  Metrics count every diagnostic, logged or not.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Container
from typing import Any

import orjson
import structlog

from bridge.effects import Side
from bridge.ocppj.rpc import Diagnostic

_SECRET_WORDS = ("password", "authorization", "secret", "token")

MAX_VALUE_CHARS = 256  # of a string value in a log line, beyond which it is cut
MAX_ITEMS = 16  # of a list, tuple, set or dict value
MAX_DEPTH = 3  # containers nested in a value
DIAGNOSTIC_BURST = 5
DIAGNOSTIC_INTERVAL = 60.0
_WHOLE = frozenset({"event", "exc_info", "exception", "timestamp", "level", "logger", "stack_info"})


def _mask_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in event:
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "**********"
    return event


def bounded(value: Any, depth: int = 0) -> Any:
    """`value` cut to a size fit for a log line (see the module rules); small values are returned as
    they are."""
    kind = type(value)
    if kind is str:
        if len(value) <= MAX_VALUE_CHARS:
            return value
        return f"{value[:MAX_VALUE_CHARS]}…({len(value)} chars)"
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value[:MAX_VALUE_CHARS])
        return data if len(value) <= MAX_VALUE_CHARS else f"{data!r}…({len(value)} bytes)"
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return f"…(a dict of {len(value)} items)"
        items = {
            (bounded(key) if type(key) is str else key): bounded(item, depth + 1)
            for key, item in list(value.items())[:MAX_ITEMS]
        }
        if len(value) > MAX_ITEMS:
            items["…"] = f"({len(value)} items)"
        return items
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return f"…(a {kind.__name__} of {len(value)} items)"
        kept = [bounded(item, depth + 1) for item in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            kept.append(f"…({len(value)} items)")
        return kept
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:  # a str subclass
        return bounded(str(value), depth)
    return value  # anything else is rendered by the renderer's own repr of a known type


def bound_values(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The processor: every value of a log line but the event name and a traceback, `bounded`."""
    for key, value in event.items():
        if key not in _WHOLE:
            event[key] = bounded(value)
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
        bound_values,
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


def log_diagnostic(log: Any, diagnostic: Diagnostic, suppressed: int = 0) -> None:
    """A core diagnostic as one warning line, its kind as the event name; `suppressed`: how many of
    its kind were left out before it (`DiagnosticLimiter`), logged when not 0.

    Never raises: a field named like one of the line's own keys is logged as `field_<name>`."""
    fields = {
        f"field_{key}" if key in _DIAGNOSTIC_KEYS else key: value
        for key, value in diagnostic.fields.items()
    }
    if suppressed:
        fields["suppressed"] = suppressed
    log.warning(
        diagnostic.kind,
        detail=diagnostic.message,
        message_id=diagnostic.message_id,
        action=diagnostic.action,
        **fields,
    )


class DiagnosticLimiter:
    """Which diagnostics of one station are logged: per (side, kind), `burst` lines per `interval`
    seconds (on the caller's clock); the others are counted and reported with the next line."""

    def __init__(
        self, burst: int = DIAGNOSTIC_BURST, interval: float = DIAGNOSTIC_INTERVAL
    ) -> None:
        self._burst = burst
        self._interval = interval
        # (side, kind) -> [window start, lines logged in it, suppressed since the last line logged]
        self._kinds: dict[tuple[Side, str], list[Any]] = {}

    def admit(self, side: Side, kind: str, now: float) -> int | None:
        """None: leave this one out (it is counted). Otherwise log it, with this many suppressed."""
        state = self._kinds.get((side, kind))
        if state is None:
            self._kinds[(side, kind)] = [now, 1, 0]
            return 0
        if now - state[0] >= self._interval:
            state[0], state[1] = now, 0
        if state[1] < self._burst:
            state[1] += 1
            suppressed, state[2] = state[2], 0
            return int(suppressed)
        state[2] += 1
        return None

    def take_suppressed(self) -> list[tuple[Side, str, int]]:
        """(side, kind, count) of what was left out and not reported yet; reported from now on."""
        taken = []
        for (side, kind), state in self._kinds.items():
            if state[2]:
                taken.append((side, kind, int(state[2])))
                state[2] = 0
        return taken


class RefusalLog:
    """Connections refused at a listener (a handshake, a 104 identification): each one counted
    (`count(reason)`, a metric), its warning logged within a `DiagnosticLimiter` per station and
    (event, reason), the next line carrying how many were `suppressed`. Ids not in `known` (made up by whoever connects)
    share one key, so a scan of ids cannot grow the limiters."""

    def __init__(self, count: Callable[[str], None] | None, known: Container[str]) -> None:
        self._count = count
        self._known = known
        self._limiters: dict[str, DiagnosticLimiter] = {}

    def __call__(
        self, log: Any, station_id: str | None, event: str, counted_as: str, now: float,
        **fields: Any,
    ) -> None:  # fmt: skip
        if self._count is not None:
            self._count(counted_as)
        key = station_id if station_id is not None and station_id in self._known else ""
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = DiagnosticLimiter()
        suppressed = limiter.admit(Side.SOUTH, f"{event}/{counted_as}", now)
        if suppressed is None:
            return
        if suppressed:
            fields["suppressed"] = suppressed
        log.warning(event, **fields)
