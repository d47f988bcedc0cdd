"""Log lines are bounded whatever a peer sends, and repeated diagnostics are rate-limited per station,
side and kind with a count of what was left out (issue 17 item 2)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from adapters.connection import MemoryConnection
from adapters.driver import CoreDriver
from adapters.ops.logs import (
    DIAGNOSTIC_BURST,
    MAX_ITEMS,
    MAX_VALUE_CHARS,
    DiagnosticLimiter,
    bounded,
    configure_logging,
    get_logger,
)
from adapters.ops.metrics import BridgeMetrics
from bridge.effects import Effect, Report, Side
from bridge.ocppj.rpc import Diagnostic


def test_a_long_string_keeps_its_beginning_and_says_its_length() -> None:
    value = "unknown action '" + "A" * 5000 + "'"
    cut = bounded(value)
    assert cut.startswith(value[:MAX_VALUE_CHARS])
    assert cut.endswith(f"…({len(value)} chars)")
    assert len(cut) < MAX_VALUE_CHARS + 20
    assert bounded("short") == "short"
    assert bounded(42) == 42


def test_containers_keep_their_first_items_and_nesting_is_cut() -> None:
    cut = bounded(list(range(1000)))
    assert cut[:MAX_ITEMS] == list(range(MAX_ITEMS))
    assert cut[-1] == "…(1000 items)"
    deep: Any = "x" * 10_000
    for _ in range(50):
        deep = {"k": [deep]}
    assert len(json.dumps(bounded(deep))) < 200
    assert bounded({"a": ["b" * 1000]})["a"][0].endswith("…(1000 chars)")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The production configuration, its handler writing to a buffer; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "info")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("websockets").setLevel(logging.NOTSET)


def test_a_line_with_a_peers_huge_value_stays_short(json_logs: io.StringIO) -> None:
    get_logger().bind(station_id="CP-1").warning(
        "invalid-call", detail="unknown action '" + "A" * 500_000 + "'", action="A" * 500_000
    )
    (line,) = json_logs.getvalue().splitlines()
    assert len(line) < 1000
    fields = json.loads(line)
    assert fields["event"] == "invalid-call"
    assert fields["action"].endswith("…(500000 chars)")
    assert fields["detail"].endswith("…(500017 chars)")


def test_the_limiter_lets_a_burst_through_then_reports_what_it_left_out() -> None:
    limiter = DiagnosticLimiter(burst=3, interval=60.0)
    admitted = [limiter.admit(Side.SOUTH, "invalid-call", now=float(n)) for n in range(10)]
    assert admitted == [0, 0, 0, None, None, None, None, None, None, None]
    # another kind, or the other side, has its own allowance
    assert limiter.admit(Side.SOUTH, "invalid-frame", 10.0) == 0
    assert limiter.admit(Side.NORTH, "invalid-call", 10.0) == 0
    # the next window: the first line carries the count
    assert limiter.admit(Side.SOUTH, "invalid-call", 60.0) == 7
    assert limiter.admit(Side.SOUTH, "invalid-call", 61.0) == 0
    for n in range(5):
        limiter.admit(Side.SOUTH, "invalid-call", 62.0 + n)
    assert limiter.take_suppressed() == [(Side.SOUTH, "invalid-call", 4)]
    assert limiter.take_suppressed() == []


class _Core:
    def __init__(self) -> None:
        self.pending: list[Effect] = []

    def connection_made(self, side: Side, now: float, wall: float) -> None: ...

    def connection_lost(self, side: Side, now: float, wall: float) -> None: ...

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None: ...

    def handle_timer(self, now: float, wall: float) -> None: ...

    def next_deadline(self) -> float | None:
        return None

    def effects(self) -> list[Effect]:
        effects, self.pending = self.pending, []
        return effects


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((event, fields))


async def test_the_driver_logs_a_burst_counts_all_and_sums_up_at_the_end() -> None:
    core, connection, metrics = _Core(), MemoryConnection(), BridgeMetrics()
    logs = {side: _Log() for side in Side}
    driver = CoreDriver(core, logs, station_id="CP", metrics=metrics)
    driver.attach(Side.NORTH, connection)
    serving = asyncio.create_task(driver.serve(Side.NORTH))
    for n in range(100):
        core.pending = [Report(Side.NORTH, Diagnostic("late-answer", "late", message_id=str(n)))]
        driver.feed(lambda now, wall: None)
    lines = logs[Side.NORTH].lines
    assert [event for event, _ in lines] == ["late-answer"] * DIAGNOSTIC_BURST
    late = metrics.registry.get_sample_value("ocpp_bridge_late_answers_total", {"side": "north"})
    assert late == 100  # every one counted, logged or not
    connection.end()
    async with asyncio.timeout(5):
        await serving
    assert lines[-1] == (
        "diagnostics.suppressed",
        {"kind": "late-answer", "count": 100 - DIAGNOSTIC_BURST},
    )
