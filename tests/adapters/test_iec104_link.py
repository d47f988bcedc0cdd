"""adapters.iec104.link.Iec104Link (the bridge's own 104 link) against a c104 server on loopback.

c104 (lib60870) is the independent peer here (`Charger104`). What the link promises the core: plain
values, time tags read in the table's zone, unknown IOAs and mismatched types forwarded (the core
reports them), one CommandConfirmed per command, LinkUp/LinkDown with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import c104
import pytest
import structlog

from adapters.config import Iec104Station
from adapters.iec104.link import DialOut, Iec104Link
from adapters.iec104.station import session_settings
from adapters.mapping_files import compile_file
from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.session import Session104
from bridge.stations.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    Send104Command,
)
from bridge.stations.iec104.vocabulary import TypeId
from tests.e2e.iec104_charger import Charger104

DC = Path(__file__).resolve().parents[2] / "mappings" / "gb-dc-charger.yaml"
TABLE = compile_file(DC, 1)


class Events:
    def __init__(self) -> None:
        self.seen: list[LinkEvent] = []
        self.changed = asyncio.Event()

    def __call__(self, batch: list[LinkEvent]) -> None:
        self.seen.extend(batch)
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def updates(self, ioa: int) -> list[PointUpdate]:
        return [e for e in self.seen if isinstance(e, PointUpdate) and e.ioa == ioa]

    def confirmations(self) -> list[CommandConfirmed]:
        return [e for e in self.seen if isinstance(e, CommandConfirmed)]


def station(table_path: Path = DC) -> Iec104Station:
    return Iec104Station.model_validate(
        {"id": "L", "protocol": "iec104", "host": "127.0.0.1", "mapping": str(table_path)}
    )


@contextlib.asynccontextmanager
async def linked(
    table: CompiledTable = TABLE,
    initial: dict[int, Any] | None = None,
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[Charger104, Iec104Link, Events]]:
    charger = Charger104(table, initial or {0x0022: True, 0x6401: 4242})
    await charger.start()
    events = Events()
    loop = asyncio.get_running_loop()
    drops: list[str] = []
    link = Iec104Link(
        "L",
        Session104(session_settings(station(), table), now=loop.time()),
        consumer=events,
        log=structlog.get_logger(),
        dial_out=DialOut(host, charger.port),
        on_drop=drops.append,
    )
    task = asyncio.create_task(link.run())
    try:
        await events.wait_for(lambda: any(isinstance(e, LinkUp) for e in events.seen))
        yield charger, link, events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await charger.stop()
    assert "bad_frame" not in drops and "sequence" not in drops


async def test_interrogations_on_connect_bring_every_value_as_plain_python() -> None:
    async with linked() as (_, _link, events):
        await events.wait_for(lambda: events.updates(0x6401) and events.updates(0x0025))
        holstered = events.updates(0x0022)[-1]
        assert (holstered.type_id, holstered.value, holstered.quality) == (
            "M_SP_NA_1",
            True,
            frozenset(),
        )
        assert type(events.updates(0x0025)[-1].value) is int  # a double point's state
        counter = events.updates(0x6401)[-1]
        assert (counter.type_id, counter.value) == ("M_IT_NA_1", 4242)
        assert isinstance(events.updates(0x4001)[-1].value, float)


async def test_spontaneous_updates_in_order() -> None:
    async with linked() as (charger, _, events):
        # the interrogation at link-up brings 0x4002's value too; updates sent while its answer is
        # still under way may arrive before that older value (104 does not order the two causes)
        await events.wait_for(lambda: events.updates(0x4002))
        for value in (1.0, 2.0, 3.0):
            await charger.update(0x4002, value)
        await events.wait_for(lambda: [u.value for u in events.updates(0x4002)][-3:] == [1, 2, 3])


async def test_unknown_ioa_and_mismatched_type_are_forwarded_for_the_core() -> None:
    async with linked() as (charger, _, events):
        extra = charger.station.add_point(io_address=0x0999, type=c104.Type.M_SP_NA_1)
        extra.value = True
        await asyncio.to_thread(extra.transmit, c104.Cot.SPONTANEOUS)
        await events.wait_for(lambda: bool(events.updates(0x0999)))
        assert events.updates(0x0999)[0].type_id == "M_SP_NA_1"


async def test_time_tags_are_read_in_the_tables_time_zone() -> None:
    async with linked() as (charger, _, events):
        tagged = charger.station.add_point(io_address=0x0999, type=c104.Type.M_SP_TB_1)
        # The charger's clock says 2026-01-01 08:00:00 (Beijing), which is 00:00:00 UTC.
        wire = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC)  # the fields on the wire
        tagged.info = c104.SingleInfo(on=True, recorded_at=wire.astimezone().replace(tzinfo=None))
        await asyncio.to_thread(tagged.transmit, c104.Cot.SPONTANEOUS)
        await events.wait_for(lambda: bool(events.updates(0x0999)))
        stamp = events.updates(0x0999)[0].timestamp
        assert stamp == datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()


async def test_commands_positive_and_negative() -> None:
    async with linked() as (charger, link, events):
        charger.refuse.add(0x6002)
        link.command(Send104Command(1, 0x6001, TypeId.C_SC_NA_1, True, purpose="start"))
        link.command(Send104Command(2, 0x6002, TypeId.C_SC_NA_1, True, purpose="unlock"))
        link.command(Send104Command(3, 0x6202, TypeId.C_SE_NC_1, 16.0, purpose="limit"))
        await events.wait_for(lambda: len(events.confirmations()) == 3)
        outcome = {c.command_id: c.positive for c in events.confirmations()}
        assert outcome == {1: True, 2: False, 3: True}
        assert charger.sent_to(0x6001) == [True]
        assert charger.sent_to(0x6202) == [16.0]


async def test_c_rp_na_1_is_sent_and_answered() -> None:
    """c104 could not send a reset process command; the own link can (QRP 1: general reset)."""
    async with linked() as (_, link, events):
        link.command(Send104Command(9, 0, TypeId.C_RP_NA_1, 1, purpose="reset"))
        await events.wait_for(lambda: bool(events.confirmations()))
        confirmation = events.confirmations()[0]
        assert confirmation.command_id == 9
        assert confirmation.detail != "the 104 link is down"


async def test_a_command_that_waited_past_its_deadline_is_not_sent() -> None:
    """The CSMS was answered while the command waited behind another one to its IOA: the charger
    must not carry out what the CSMS was told did not happen."""
    async with linked() as (charger, link, events):
        charger.confirm_delay = 0.8  # the first command holds 0x6001 for 0.8 s
        deadline = asyncio.get_running_loop().time() + 0.3
        link.command(Send104Command(1, 0x6001, TypeId.C_SC_NA_1, True, purpose="start"))
        link.command(
            Send104Command(2, 0x6001, TypeId.C_SC_NA_1, False, purpose="stop", deadline=deadline)
        )
        await events.wait_for(lambda: len(events.confirmations()) == 2)
        outcome = {c.command_id: (c.positive, c.detail) for c in events.confirmations()}
        assert outcome[1] == (True, "")
        assert outcome[2][0] is False
        assert outcome[2][1].startswith("not sent")
        assert charger.sent_to(0x6001) == [True]


async def test_a_slow_confirmation_within_the_command_timeout_is_positive(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor.yaml"
    vendor.write_text("extends: gb-dc-charger\nstation: {command_timeout: 0.5}\n")
    async with linked(compile_file(vendor, 1)) as (charger, link, events):
        charger.confirm_delay = 0.2
        link.command(Send104Command(1, 0x6002, TypeId.C_SC_NA_1, True, purpose="unlock"))
        await events.wait_for(lambda: len(events.confirmations()) == 1)
        charger.confirm_delay = 1.0
        link.command(Send104Command(2, 0x6002, TypeId.C_SC_NA_1, True, purpose="unlock"))
        await events.wait_for(lambda: len(events.confirmations()) == 2)
        outcome = {c.command_id: (c.positive, c.detail) for c in events.confirmations()}
        assert outcome == {1: (True, ""), 2: (False, "no confirmation within 0.5 s")}


async def test_link_down_and_back() -> None:
    async with linked() as (charger, link, events):
        await charger.stop()
        await events.wait_for(lambda: any(isinstance(e, LinkDown) for e in events.seen))
        assert not link.is_up
        link.command(Send104Command(5, 0x6001, TypeId.C_SC_NA_1, False))
        await events.wait_for(lambda: bool(events.confirmations()))
        assert events.confirmations()[0].positive is False
        await charger.start()
        await events.wait_for(lambda: [type(e) for e in events.seen].count(LinkUp) == 2)
        assert link.is_up


async def test_a_host_name_is_resolved() -> None:
    async with linked(host="localhost") as (_, link, _events):
        assert link.is_up


@pytest.mark.parametrize("act_term", [True, False])
async def test_select_and_execute(tmp_path: Path, act_term: bool) -> None:
    vendor = tmp_path / "vendor.yaml"
    vendor.write_text(
        "extends: gb-dc-charger\n"
        f"station: {{command_mode: select-execute, expects_act_term: {str(act_term).lower()}}}\n"
    )
    table = compile_file(vendor, 1)
    async with linked(table) as (charger, link, events):
        link.command(Send104Command(1, 0x6001, TypeId.C_SC_NA_1, True, select=True))
        await events.wait_for(lambda: bool(events.confirmations()))
        assert events.confirmations()[0].positive
        assert charger.sent_to(0x6001)[-1] is True


def test_the_link_works_on_uvloop_the_bridges_default_loop() -> None:
    """uvloop's transports are not asyncio.Transport subclasses: the link must not require one."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        async with linked() as (_, link, events):
            link.command(Send104Command(1, 0x6001, TypeId.C_SC_NA_1, True, purpose="start"))
            await events.wait_for(lambda: bool(events.confirmations()))
            assert events.confirmations()[0].positive

    uvloop.run(scenario())


async def test_a_large_read_is_handed_over_a_budget_per_turn_in_order() -> None:
    """One charger's burst must not hold the event loop: READ_BUDGET bytes a turn, the socket's
    reading paused meanwhile, every byte delivered in order."""
    from adapters.iec104.link import READ_BUDGET, _Protocol

    chunks: list[bytes] = []
    timeline: list[str] = []

    class Link:
        def data_received(self, protocol: object, data: bytes) -> None:
            chunks.append(data)
            timeline.append("chunk")

        def connection_lost(self, protocol: object) -> None:
            pass

    class Transport:
        paused = False
        pauses = 0

        def pause_reading(self) -> None:
            self.paused = True
            self.pauses += 1

        def resume_reading(self) -> None:
            self.paused = False

        def is_closing(self) -> bool:
            return False

    protocol = _Protocol(Link())  # type: ignore[arg-type]
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    burst = bytes(range(256)) * (5 * READ_BUDGET // 256 + 3)
    loop = asyncio.get_running_loop()
    ticks = 0

    def tick() -> None:  # another connection's work, between the turns
        nonlocal ticks
        ticks += 1
        timeline.append("other")
        if ticks < 20:
            loop.call_soon(tick)

    loop.call_soon(tick)
    protocol.data_received(burst)
    assert transport.paused and len(chunks) == 1
    protocol.data_received(b"tail")  # arrived before the pause took effect: waits its turn
    for _ in range(50):
        if not transport.paused:
            break
        await asyncio.sleep(0)
    assert not transport.paused and transport.pauses == 1
    assert all(len(chunk) <= READ_BUDGET for chunk in chunks)
    assert b"".join(chunks) == burst + b"tail"
    burst_part = "".join("c" if t == "chunk" else "o" for t in timeline)
    assert "cc" not in burst_part.rstrip("o")  # other work ran between every two turns
    small = len(chunks)
    protocol.data_received(b"next")
    assert chunks[small:] == [b"next"]  # a small read goes at once


def test_a_connection_lost_before_the_link_starts_is_a_failed_attempt_on_uvloop() -> None:
    """uvloop raises on a write to a transport whose connection_lost has run (asyncio ignores it).
    A charger that closes at once can be lost before the dialling task resumes: starting the link
    on it wrote the STARTDT and raised out of the link's task (found by the 104 fuzz run: the bridge
    exited 1 on SIGTERM with 'the handler is closed'). It must count as a failed attempt."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        async def close_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.transport.abort()

        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = Iec104Link(
            "L",
            Session104(session_settings(station(), TABLE), now=asyncio.get_running_loop().time()),
            consumer=Events(),
            log=structlog.get_logger(),
            dial_out=DialOut("127.0.0.1", port),
        )
        dial = link._dial  # widens the window the race needs, deterministically

        async def dial_then_lose(target: DialOut) -> Any:
            transport, protocol = await dial(target)
            await protocol.closed  # the peer's close is delivered before the link starts
            return transport, protocol

        setattr(link, "_dial", dial_then_lose)  # noqa: B010 - replaces the bound method
        task = asyncio.create_task(link.run())
        async with asyncio.timeout(10):
            while link.failed_attempts < 1 and not task.done():
                await asyncio.sleep(0.01)
        assert not task.done(), task.exception()
        assert link.failed_attempts >= 1 and not link.connected
        link.stop_dialing()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.close()
        await server.wait_closed()

    uvloop.run(scenario())
