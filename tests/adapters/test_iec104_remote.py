"""IEC 104 links in worker processes (`adapters.iec104_remote`, `adapters.iec104_worker`).

A real worker process dials a real c104 server (`Charger104`) on loopback. What must hold: the same
events as an in-process link, one confirmation per command, and a worker that dies (SIGKILL, as an
abort inside lib60870 would end it) costs a link drop, never the bridge: its links come back on a new
worker, and the bridge's CSMS connection stays open throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.config import Iec104Station
from adapters.iec104_link import LinkSettings
from adapters.iec104_remote import LinkWorkers, RemoteLink
from adapters.iec104_worker import decode_command, decode_events, encode_command, encode_events
from adapters.logs import get_logger
from adapters.mapping_files import compile_file
from bridge.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    Send104Command,
)
from bridge.iec104.vocabulary import TypeId
from tests.adapters.test_iec104_link import Events
from tests.e2e.conftest import bridge_config, running_bridge
from tests.e2e.iec104_charger import Charger104, idle_charger, station_entry
from tests.peers import running_csms

DC = Path(__file__).resolve().parents[2] / "mappings" / "gb-dc-charger.yaml"
TABLE = compile_file(DC, 1)


def test_events_and_commands_survive_the_wire() -> None:
    events: list[LinkEvent] = [
        PointUpdate(0x0021, "M_SP_NA_1", True),
        PointUpdate(0x4001, "M_ME_TF_1", 400.5, frozenset({"Invalid", "Blocked"}), 1.5e9),
        CommandConfirmed(7, 0x6001, False, "negative confirmation"),
        LinkUp(),
        LinkDown("OPEN_AWAIT_CLOSED"),
    ]
    assert decode_events(encode_events(events)) == events
    command = Send104Command(3, 0x6202, TypeId.C_SE_NC_1, 16.0, purpose="limit", deadline=104.0)
    # the deadline travels as the time left: another process's clock may read differently
    moved = decode_command(encode_command(command, now=100.0), now=5000.0)
    assert moved.deadline == 5004.0
    assert moved.__class__ is Send104Command
    assert (moved.command_id, moved.ioa, moved.type_id, moved.value) == (
        3,
        0x6202,
        "C_SE_NC_1",
        16.0,
    )
    endless = decode_command(
        encode_command(Send104Command(4, 0x6001, TypeId.C_SC_NA_1, True), 1), 9
    )
    assert endless.deadline is None


def count(events: Events, kind: type) -> int:
    return sum(isinstance(e, kind) for e in events.seen)


def station(port: int) -> Iec104Station:
    return Iec104Station.model_validate(
        {
            "id": "GB104-W",
            "protocol": "iec104",
            "host": "127.0.0.1",
            "port": port,
            "mapping": str(DC),
        }
    )


@contextlib.asynccontextmanager
async def remote(charger: Charger104) -> AsyncIterator[tuple[LinkWorkers, RemoteLink, Events]]:
    workers = LinkWorkers(10, log_format="json", log_level="warning")
    seen = Events()
    link = RemoteLink(
        workers,
        station(charger.port),
        consumer=seen,
        log=get_logger(),
        settings=LinkSettings(watchdog_interval=0.2),
    )
    task = asyncio.create_task(link.run())
    try:
        yield workers, link, seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await workers.close()


async def test_a_worker_carries_the_link_and_its_commands() -> None:
    async with idle_charger({0x6401: 4242}) as charger:
        async with remote(charger) as (workers, link, seen):
            await seen.wait_for(lambda: link.is_up and link.received >= len(TABLE.monitoring))
            assert len(workers.pids) == 1 and workers.pids[0] != os.getpid()
            counter = [e for e in seen.seen if isinstance(e, PointUpdate) and e.ioa == 0x6401]
            assert counter[-1].value == 4242
            await charger.update(0x4002, 31.5)
            await seen.wait_for(
                lambda: any(
                    isinstance(e, PointUpdate) and e.ioa == 0x4002 and e.value == 31.5
                    for e in seen.seen
                )
            )
            link.command(Send104Command(1, 0x6001, TypeId.C_SC_NA_1, True, purpose="start"))
            await seen.wait_for(lambda: count(seen, CommandConfirmed) == 1)
            (confirmed,) = [e for e in seen.seen if isinstance(e, CommandConfirmed)]
            assert (confirmed.command_id, confirmed.positive) == (1, True)
            assert charger.sent_to(0x6001) == [True]
        assert workers.pids == []  # closed: no worker left behind


async def test_a_killed_worker_is_a_link_drop_and_a_new_worker_brings_the_link_back() -> None:
    async with idle_charger() as charger, remote(charger) as (workers, link, seen):
        await seen.wait_for(lambda: link.is_up)
        (first,) = workers.pids
        charger.confirm_delay = 5.0  # this command will still wait when its worker dies
        link.command(Send104Command(8, 0x6002, TypeId.C_SC_NA_1, True, purpose="unlock"))
        await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)
        await seen.wait_for(lambda: count(seen, LinkDown) == 1)
        confirmed = [e for e in seen.seen if isinstance(e, CommandConfirmed)]
        assert [(c.command_id, c.positive) for c in confirmed] == [(8, False)]
        assert "104 worker ended" in confirmed[0].detail
        # meanwhile commands are answered at once, never lost
        link.command(Send104Command(9, 0x6001, TypeId.C_SC_NA_1, True))
        await seen.wait_for(lambda: count(seen, CommandConfirmed) == 2)
        charger.confirm_delay = 0.0
        await seen.wait_for(lambda: count(seen, LinkUp) == 2)
        assert workers.pids and workers.pids[0] != first
        assert link.is_up


@pytest.mark.timeout(60)
async def test_the_bridge_and_its_csms_connection_outlive_a_104_worker() -> None:
    async with idle_charger({0x0021: True}) as charger, running_csms() as csms:
        config = bridge_config(csms.url, [station_entry("GB104-W", charger.port)])
        async with running_bridge(config) as bridge:
            session = await csms.session("GB104-W")
            cp = session.charge_point
            await charger.update(0x0023, True)  # charging: a transaction starts
            await csms.wait_for(
                lambda: any(p["event_type"] == "Started" for p in cp.payloads("TransactionEvent"))
            )
            (worker,) = bridge.iec104_worker_pids
            os.kill(worker, signal.SIGKILL)
            await asyncio.sleep(0.5)
            await charger.update(0x6401, 100_300)
            await charger.update(0x0023, False)  # charging ends after the worker came back
            await csms.wait_for(
                lambda: any(p["event_type"] == "Ended" for p in cp.payloads("TransactionEvent")),
                timeout=30,
            )
            assert not session.closed.is_set()  # the CSMS never saw the station go
            events = cp.payloads("TransactionEvent")
            assert [e["event_type"] for e in events].count("Started") == 1
            assert len({e["transaction_info"]["transaction_id"] for e in events}) == 1
            assert bridge.iec104_worker_pids and bridge.iec104_worker_pids[0] != worker
            assert csms.problems() == []
