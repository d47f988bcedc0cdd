"""The driver's outgoing queue is bounded by its connection's `send_limits`; a queue whose connection
ended goes at once, not one failed write per frame (issue 17 item 1)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from adapters.connection import MemoryConnection, SendLimits
from adapters.driver import CoreDriver
from adapters.ops.metrics import BridgeMetrics
from bridge.effects import Close, Effect, Send, Side


def _stuck(limits: SendLimits) -> MemoryConnection:
    """A peer that does not read, whose write buffer is already full: every frame goes through the
    driver's queue, and every `send_text` waits until the connection ends."""
    connection = MemoryConnection(send_limits=limits, write_high_water=-1)
    connection.reading = False
    return connection


class _Core:
    def __init__(self) -> None:
        self.pending: list[Effect] = []
        self.lost = 0

    def connection_made(self, side: Side, now: float, wall: float) -> None: ...

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        self.lost += 1

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


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _setup(
    limits: SendLimits,
) -> tuple[CoreDriver, _Core, MemoryConnection, dict[Side, _Log], BridgeMetrics]:
    core, connection, metrics = _Core(), _stuck(limits), BridgeMetrics()
    logs = {side: _Log() for side in Side}
    driver = CoreDriver(core, logs, station_id="CP", metrics=metrics)  # type: ignore[arg-type]
    driver.attach(Side.SOUTH, connection)
    return driver, core, connection, logs, metrics


def _dropped(metrics: BridgeMetrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value(
        "ocpp_bridge_connections_dropped_total", {"side": "south", "reason": reason}
    )


async def test_the_frame_past_max_frames_drops_the_connection_and_discards_the_queue() -> None:
    driver, core, connection, logs, metrics = _setup(SendLimits(max_frames=10, max_bytes=1 << 20))
    core.pending = [Send(Side.SOUTH, f"frame {n}") for n in range(10)]
    driver.feed(lambda now, wall: None)
    await _settle()  # the writer takes the first and waits in its send; 9 stay queued
    assert metrics.send_queue_size(Side.SOUTH) == sum(
        sys.getsizeof(f"frame {n}") for n in range(1, 10)
    )
    core.pending = [Send(Side.SOUTH, "frame 10")]  # the 10th queued: fits
    driver.feed(lambda now, wall: None)
    assert connection.dropped is None
    core.pending = [Send(Side.SOUTH, "frame 11"), Close(Side.SOUTH, 1000, "bye")]  # the 11th: not
    driver.feed(lambda now, wall: None)
    assert connection.dropped == (1008, "not reading")
    assert metrics.send_queue_size(Side.SOUTH) == 0
    assert _dropped(metrics, "queue_full") == 1
    event, fields = logs[Side.SOUTH].lines[-1]
    assert event == "connection.dropped"
    assert fields["reason"] == "queue_full"
    assert fields["queued_frames"] == 10
    # nothing more is queued for it; the writer ends with the connection
    core.pending = [Send(Side.SOUTH, "frame 12")]
    driver.feed(lambda now, wall: None)
    assert metrics.send_queue_size(Side.SOUTH) == 0
    serving = asyncio.create_task(driver.serve(Side.SOUTH))
    connection.end()
    async with asyncio.timeout(5):
        await serving
    assert connection.sent == ["frame 0"]
    assert core.lost == 1


async def test_max_bytes_bounds_the_queue_but_a_frame_alone_always_fits() -> None:
    big = "x" * 5000
    driver, core, connection, _, metrics = _setup(SendLimits(max_frames=100, max_bytes=4096))
    core.pending = [Send(Side.SOUTH, "first")]
    driver.feed(lambda now, wall: None)
    await _settle()  # the writer waits in its send of "first": the queue is empty
    core.pending = [Send(Side.SOUTH, big)]
    driver.feed(lambda now, wall: None)
    assert connection.dropped is None  # alone in the queue, bigger than max_bytes
    assert metrics.send_queue_size(Side.SOUTH) == sys.getsizeof(big)
    core.pending = [Send(Side.SOUTH, "one more")]
    driver.feed(lambda now, wall: None)
    assert connection.dropped == (1008, "not reading")
    assert _dropped(metrics, "queue_full") == 1


async def test_a_write_waiting_past_write_timeout_drops_the_connection() -> None:
    limits = SendLimits(max_frames=100, max_bytes=1 << 20, write_timeout=0.01)
    driver, core, connection, logs, metrics = _setup(limits)
    core.pending = [Send(Side.SOUTH, "a"), Send(Side.SOUTH, "b")]
    driver.feed(lambda now, wall: None)
    async with asyncio.timeout(5):
        while connection.dropped is None:
            await asyncio.sleep(0.01)
    assert connection.dropped == (1008, "not reading: write timeout")
    assert _dropped(metrics, "write_timeout") == 1
    assert logs[Side.SOUTH].lines[-1][1]["reason"] == "write_timeout"
    assert metrics.send_queue_size(Side.SOUTH) == 0


async def test_a_queue_whose_connection_ended_is_discarded_at_once() -> None:
    """The freeze of issue 17: a full queue of a connection that ended was written frame by frame, each
    write failing at once without yielding. Now the first failure discards the rest."""
    driver, core, connection, _, metrics = _setup(SendLimits(max_frames=5000, max_bytes=1 << 30))
    core.pending = [Send(Side.SOUTH, f"frame {n}") for n in range(5000)]
    driver.feed(lambda now, wall: None)
    await _settle()
    serving = asyncio.create_task(driver.serve(Side.SOUTH))
    connection.end()  # the peer went away
    async with asyncio.timeout(5):
        await serving
    assert connection.sent == ["frame 0"]  # the one in flight; the 4,999 behind it were never tried
    assert connection.dropped is None
    assert metrics.send_queue_size(Side.SOUTH) == 0
    assert _dropped(metrics, "queue_full") == 0
