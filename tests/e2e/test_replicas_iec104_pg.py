"""IEC 104 stations under leases on one PostgreSQL (a real server, tests/pg.py; issue 20 items 2-3), with
two bridge processes (`ocpp-bridge run`) and the tests' simulated 104 charger (a c104 server,
tests/e2e/iec104_charger.py) as the dial-out charger: one replica claims the station and dials it; when
that replica is SIGKILLed, the other claims the station once the lease expires, dials the charger, and
the transaction under way continues with the same transaction id, nothing duplicated. Dial-in: the
charger (spelled out in bytes, tests/e2e/test_iec104_dial_in.py) moves from one replica to the other
mid-transaction; the one it left closes its old connection. Dial-out stations are spread: two
stations, two replicas, one each."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.e2e.iec104_charger import idle_charger
from tests.e2e.test_iec104 import events
from tests.e2e.test_iec104_dial_in import WireCharger, dialled_in, payloads, statuses
from tests.faults.harness import BridgeProcess, bridge_toml, free_port
from tests.peers import running_csms

STATION = "CP104"
DIAL_IN = "GB104-IN"
PLUG, CHARGING, ENERGY = 0x0021, 0x0023, 0x6401


def _config(
    folder: Path,
    store: str,
    csms_url: str,
    dial_out: list[tuple[str, int]],
    listen: int | None = None,
) -> Path:
    folder.mkdir()
    text = bridge_toml(
        store=store,
        csms_url=csms_url,
        south_port=free_port(),
        stations=[],
        iec104=dial_out,
        iec104_listen=listen,
    )
    if listen is not None:  # a dial-in station identified by its common address
        text += (
            f'[[stations]]\nid = "{DIAL_IN}"\nprotocol = "iec104"\ndial = "in"\n'
            'connectors = 1\nmapping = "gb-dc-charger"\n'
        )
    config = folder / "bridge.toml"
    config.write_text(
        text.replace("[bridge]\n", "[bridge]\nleases = true\nlease_seconds = 1.0\n", 1)
    )
    return config


def _check_once(events: list[dict[str, Any]]) -> None:
    """At least once: a replica may have been killed (or lost its lease) after the CSMS answered a
    message and before it recorded the answer; the next owner then sends it again, identical (the
    fault harness's oracle, tests/faults/harness.py). Each (transactionId, seqNo) is one message: all
    its copies equal, none missing, one transaction from Started to Ended."""
    copies: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for event in events:
        key = (event["transaction_info"]["transaction_id"], event["seq_no"])
        copies.setdefault(key, []).append(event)
    assert all(all(c == same[0] for c in same) for same in copies.values()), copies
    unique = [same[0] for same in copies.values()]
    started = [e for e in unique if e["event_type"] == "Started"]
    ended = [e for e in unique if e["event_type"] == "Ended"]
    assert len(started) == 1 and len(ended) == 1, unique
    assert {tx for tx, _ in copies} == {started[0]["transaction_info"]["transaction_id"]}
    assert sorted(seq for _, seq in copies) == list(range(len(copies)))  # none lost
    assert started[0]["seq_no"] == 0 and ended[0]["seq_no"] == len(copies) - 1


def dial_in_events(csms: Any) -> list[dict[str, Any]]:
    return payloads(csms, "TransactionEvent", DIAL_IN)


def _records(replica: BridgeProcess, event: str) -> list[dict[str, Any]]:
    return [r for r in replica.records() if r.get("event") == event]


async def _until(check: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def test_e02_a_killed_replicas_dial_out_104_station_is_claimed_by_another_mid_transaction(
    tmp_path: Path, pg_url: str
) -> None:
    async with running_csms() as csms, idle_charger({PLUG: True}) as charger:
        replica_a = BridgeProcess(
            _config(tmp_path / "a", pg_url, csms.url, [(STATION, charger.port)]), tmp_path / "a"
        )
        replica_b = BridgeProcess(
            _config(tmp_path / "b", pg_url, csms.url, [(STATION, charger.port)]), tmp_path / "b"
        )
        try:
            await replica_a.start()
            await _until(lambda: _records(replica_a, "iec104.connected"))
            await replica_b.start()
            await charger.update(CHARGING, True)
            await csms.wait_for(lambda: len(events(csms, "Started")) == 1, timeout=30)
            assert not _records(replica_b, "iec104.connected")  # one replica dials the charger
            await replica_a.kill()
            await _until(lambda: _records(replica_b, "iec104.connected"))
            await charger.update(ENERGY, 100_900)
            await charger.update(CHARGING, False)
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=30)
            await asyncio.sleep(1.0)  # B's ticks: nothing more, no second claim
        finally:
            await replica_a.stop()
            await replica_b.stop()
    _check_once(events(csms))
    assert csms.problems() == []
    assert [r["station_id"] for r in _records(replica_b, "lease.claiming")] == [STATION]
    assert len(_records(replica_b, "iec104.connected")) == 1
    for replica in (replica_a, replica_b):
        assert not [r for r in replica.records() if r.get("level") == "error"]


async def test_e02_a_dial_in_charger_that_moves_to_another_replica_is_served_there_and_left_here(
    tmp_path: Path, pg_url: str
) -> None:
    listen_a, listen_b = free_port(), free_port()
    async with running_csms() as csms:
        replica_a = BridgeProcess(
            _config(tmp_path / "a", pg_url, csms.url, [], listen_a), tmp_path / "a"
        )
        replica_b = BridgeProcess(
            _config(tmp_path / "b", pg_url, csms.url, [], listen_b), tmp_path / "b"
        )
        try:
            await replica_a.start()
            await replica_b.start()
            async with dialled_in(listen_a) as old:
                await csms.wait_for(lambda: "Available" in statuses(csms, DIAL_IN), timeout=30)
                old.update(PLUG, True)
                await csms.wait_for(lambda: "Occupied" in statuses(csms, DIAL_IN), timeout=30)
                old.update(CHARGING, True)
                started = lambda: [e for e in dial_in_events(csms) if e["event_type"] == "Started"]  # noqa: E731
                await csms.wait_for(lambda: len(started()) == 1, timeout=30)
                moved = WireCharger()
                moved.points = dict(old.points)  # still plugged in and charging
                await moved.connect(listen_b)  # the charger's next connection reaches B
                try:
                    async with asyncio.timeout(20):
                        await old.closed.wait()  # A let go at its next renewal
                    await moved.wait_for(lambda: len(moved.received) >= 1)  # identified
                    await csms.wait_for(lambda: len(csms.history) >= 2, timeout=30)  # B's CSMS link
                    moved.counters[ENERGY] = 100_900
                    moved.update(CHARGING, False)
                    await csms.wait_for(
                        lambda: any(e["event_type"] == "Ended" for e in dial_in_events(csms)),
                        timeout=30,
                    )
                    await asyncio.sleep(1.0)  # A's ticks: nothing more reaches the CSMS
                finally:
                    await moved.close()
        finally:
            await replica_a.stop()
            await replica_b.stop()
    _check_once(dial_in_events(csms))
    assert csms.problems() == []
    assert [r["station_id"] for r in _records(replica_a, "lease.lost")] == [DIAL_IN]
    for replica in (replica_a, replica_b):
        assert not [r for r in replica.records() if r.get("level") == "error"]


async def test_dial_out_stations_are_spread_over_the_live_replicas_and_taken_back_from_a_dead_one(
    tmp_path: Path, pg_url: str
) -> None:
    async with (
        running_csms() as csms,
        idle_charger() as first,
        idle_charger() as second,
    ):
        stations = [("CP104-1", first.port), ("CP104-2", second.port)]
        replica_a = BridgeProcess(
            _config(tmp_path / "a", pg_url, csms.url, stations), tmp_path / "a"
        )
        replica_b = BridgeProcess(
            _config(tmp_path / "b", pg_url, csms.url, stations), tmp_path / "b"
        )
        try:
            await replica_a.start()
            await _until(lambda: len(_records(replica_a, "iec104.connected")) == 2)  # alone: both
            await replica_b.start()
            await _until(lambda: len(_records(replica_b, "iec104.connected")) == 1)  # its share
            given = [r["station_id"] for r in _records(replica_a, "lease.giving_up")]
            taken = [r["station_id"] for r in _records(replica_b, "lease.claiming")]
            assert len(given) == 1 and taken[-1] == given[0], (given, taken)
            await asyncio.sleep(1.5)  # settled: nothing moves back and forth
            assert len(_records(replica_a, "lease.giving_up")) == 1
            assert len(_records(replica_b, "iec104.connected")) == 1
            await replica_a.kill()
            await _until(lambda: len(_records(replica_b, "iec104.connected")) == 2)  # both again
        finally:
            await replica_a.stop()
            await replica_b.stop()
    assert csms.problems() == []
    for replica in (replica_a, replica_b):
        assert not [r for r in replica.records() if r.get("level") == "error"]
