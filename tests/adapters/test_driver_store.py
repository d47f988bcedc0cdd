"""The driver and the store's writer thread: nothing after a batch is carried out before the batch is
durable, order is kept across inputs, and a batch that cannot be written ends the session."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from adapters.connection import MemoryConnection
from adapters.driver import CoreDriver
from adapters.ops.trace import StationTrace, TraceTarget
from adapters.store import StoreError
from adapters.store_api import FencedError
from bridge.effects import Close, Effect, Persist, Send, Side


class _HeldStore:
    """Keeps each submitted batch's answer until the test gives it."""

    def __init__(self) -> None:
        self.batches: list[list[Persist]] = []
        self.answers: list[Any] = []

    def submit(self, station: str, changes: list[Persist], done: Any) -> None:
        self.batches.append(list(changes))
        self.answers.append(done)


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
        self.lines: list[str] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append(event)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class _TraceLines:
    """Stands in for the trace's writer thread: keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def put(self, target: TraceTarget, line: bytes) -> None:
        self.lines.append(json.loads(line))


async def _driver(
    trace: StationTrace | None = None,
) -> tuple[CoreDriver, _Core, _HeldStore, MemoryConnection, dict[Side, _Log]]:
    core, store, connection = _Core(), _HeldStore(), MemoryConnection("ocpp1.6")
    logs = {side: _Log() for side in Side}
    driver = CoreDriver(core, logs, station_id="CP", store=store, persistent=True, trace=trace)  # type: ignore[arg-type]
    driver.attach(Side.SOUTH, connection)
    return driver, core, store, connection, logs


async def test_nothing_after_a_batch_leaves_before_the_batch_is_durable_and_order_is_kept() -> None:
    driver, core, store, connection, _ = await _driver()
    core.pending = [Send(Side.SOUTH, "before"), Persist("tx", "1", {}), Send(Side.SOUTH, "ack1")]
    driver.feed(lambda now, wall: None)
    core.pending = [Send(Side.SOUTH, "ack2")]  # a later input, while the batch is in flight
    driver.feed(lambda now, wall: None)
    await _settle()
    assert connection.sent == ["before"]
    assert [[p.key for p in batch] for batch in store.batches] == [["1"]]
    store.answers.pop(0)(None)
    await _settle()
    assert connection.sent == ["before", "ack1", "ack2"]


async def test_a_second_batch_in_what_was_held_waits_for_its_own_answer() -> None:
    driver, core, store, connection, _ = await _driver()
    core.pending = [Persist("tx", "1", {}), Send(Side.SOUTH, "a")]
    driver.feed(lambda now, wall: None)
    core.pending = [Persist("tx", "2", {}), Send(Side.SOUTH, "b")]
    driver.feed(lambda now, wall: None)
    store.answers.pop(0)(None)
    await _settle()
    assert connection.sent == ["a"]
    assert [[p.key for p in batch] for batch in store.batches] == [["1"], ["2"]]
    store.answers.pop(0)(None)
    await _settle()
    assert connection.sent == ["a", "b"]


async def test_a_batch_that_cannot_be_written_ends_the_session_and_drops_what_was_held() -> None:
    driver, core, store, connection, logs = await _driver()
    core.pending = [Persist("tx", "1", {}), Send(Side.SOUTH, "ack")]
    driver.feed(lambda now, wall: None)
    store.answers.pop(0)(StoreError("b.db: cannot write: disk full"))
    await _settle()
    assert driver.failed
    assert connection.sent == []  # never acknowledged
    assert connection.closed == (1011, "internal error")
    assert "core.failed" in logs[Side.SOUTH].lines


async def test_a_fenced_batch_is_a_warning_and_closes_with_1013_not_a_failure_logged() -> None:
    """Another replica holds the station's lease (issue 20): expected during a failover, so no
    `core.failed` error; the session ends as a lost lease does, nothing acknowledged."""
    driver, core, store, connection, logs = await _driver()
    core.pending = [Persist("tx", "1", {}), Send(Side.SOUTH, "ack")]
    driver.feed(lambda now, wall: None)
    store.answers.pop(0)(FencedError("pg: CP1: fenced: its lease is held by b at epoch 2"))
    await _settle()
    assert driver.failed
    assert connection.sent == []
    assert connection.closed == (1013, "station served elsewhere")
    assert logs[Side.SOUTH].lines == ["store.fenced"]


async def test_a_held_send_for_a_connection_that_ended_meanwhile_is_dropped_quietly() -> None:
    driver, core, store, connection, logs = await _driver()
    core.pending = [Persist("tx", "1", {}), Send(Side.SOUTH, "ack"), Close(Side.SOUTH, 1000, "")]
    driver.feed(lambda now, wall: None)
    serving = asyncio.ensure_future(driver.serve(Side.SOUTH))
    await _settle()
    connection.end()  # the connection ends before the store answers
    await asyncio.wait_for(serving, 5)
    assert not driver.connected(Side.SOUTH)
    store.answers.pop(0)(None)
    await _settle()
    assert connection.sent == [] and not driver.failed
    assert "driver.send_without_connection" not in logs[Side.SOUTH].lines


async def test_what_waited_for_the_store_is_traced_under_the_input_that_caused_it() -> None:
    lines = _TraceLines()
    trace = StationTrace("CP", TraceTarget(Path("unused.jsonl"), 1 << 20, 1), writer=lines)  # type: ignore[arg-type]
    driver, core, store, connection, _ = await _driver(trace)
    core.pending = [Persist("tx", "1", {}), Send(Side.SOUTH, '[3,"a",{}]')]
    driver.feed(lambda now, wall: None)  # input A
    core.pending = [Send(Side.SOUTH, '[3,"b",{}]')]
    driver.feed(lambda now, wall: None)  # input B, while A's batch is in flight
    store.answers.pop(0)(None)
    core.pending = [Send(Side.SOUTH, '[3,"c",{}]')]
    driver.feed(lambda now, wall: None)  # input C, after
    await _settle()
    corr = {line["frame"][1]: line["corr"] for line in lines.lines}
    assert set(corr) == {"a", "b", "c"}
    assert len(set(corr.values())) == 3  # each under its own input's id
    assert connection.sent == ['[3,"a",{}]', '[3,"b",{}]', '[3,"c",{}]']


async def test_a_held_answer_never_goes_to_the_next_connection_of_its_side() -> None:
    """Issue 16 item 2 (seed 90210777): a StartTransaction.conf held for the store was written to the
    charger's new connection, which had never sent that message id."""
    driver, core, store, connection, logs = await _driver()
    core.pending = [Persist("tx", "1", {}), Send(Side.SOUTH, '[3,"old-1",{"transactionId":1123}]')]
    driver.feed(lambda now, wall: None)
    serving = asyncio.ensure_future(driver.serve(Side.SOUTH))
    await _settle()
    connection.end()  # the charger's connection ends while the store writes
    await asyncio.wait_for(serving, 5)
    reconnected = MemoryConnection("ocpp1.6")
    driver.attach(Side.SOUTH, reconnected)
    core.pending = [Send(Side.SOUTH, '[3,"new-1",{}]')]  # the new connection's own answer
    driver.feed(lambda now, wall: None)
    store.answers.pop(0)(None)
    await _settle()
    assert connection.sent == [] and reconnected.sent == ['[3,"new-1",{}]']
    assert not driver.failed and "driver.send_without_connection" not in logs[Side.SOUTH].lines
