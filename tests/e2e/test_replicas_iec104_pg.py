"""IEC 104 stations under leases on one PostgreSQL (a real server, tests/pg.py; issue 20 items 2-3), with
two bridge processes (`ocpp-bridge run`) and the tests' simulated 104 charger (a c104 server,
tests/e2e/iec104_charger.py) as the dial-out charger: one replica claims the station and dials it; when
that replica is SIGKILLed, the other claims the station once the lease expires, dials the charger, and
the transaction under way continues with the same transaction id, nothing duplicated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.e2e.iec104_charger import idle_charger
from tests.e2e.test_iec104 import events
from tests.faults.harness import BridgeProcess, bridge_toml, free_port
from tests.peers import running_csms

STATION = "CP104"
PLUG, CHARGING, ENERGY = 0x0021, 0x0023, 0x6401


def _config(folder: Path, store: str, csms_url: str, charger_port: int) -> Path:
    folder.mkdir()
    text = bridge_toml(
        store=store,
        csms_url=csms_url,
        south_port=free_port(),
        stations=[],
        iec104=[(STATION, charger_port)],
    )
    config = folder / "bridge.toml"
    config.write_text(
        text.replace("[bridge]\n", "[bridge]\nleases = true\nlease_seconds = 1.0\n", 1)
    )
    return config


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
            _config(tmp_path / "a", pg_url, csms.url, charger.port), tmp_path / "a"
        )
        replica_b = BridgeProcess(
            _config(tmp_path / "b", pg_url, csms.url, charger.port), tmp_path / "b"
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
    # At least once: A may have been killed after the CSMS answered a message and before A recorded
    # the answer; B then sends it again, identical (the fault harness's oracle, tests/faults/harness.py).
    # Each (transactionId, seqNo) is one message: all its copies equal, none missing, none extra.
    copies: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for event in events(csms):
        copies.setdefault(
            (event["transaction_info"]["transaction_id"], event["seq_no"]), []
        ).append(event)
    assert all(all(c == same[0] for c in same) for same in copies.values()), copies
    unique = [same[0] for same in copies.values()]
    started = [e for e in unique if e["event_type"] == "Started"]
    ended = [e for e in unique if e["event_type"] == "Ended"]
    assert len(started) == 1 and len(ended) == 1, unique
    assert {tx for tx, _ in copies} == {started[0]["transaction_info"]["transaction_id"]}
    assert sorted(seq for _, seq in copies) == list(range(len(copies)))  # none lost
    assert started[0]["seq_no"] == 0 and ended[0]["seq_no"] == len(copies) - 1
    assert csms.problems() == []
    assert [r["station_id"] for r in _records(replica_b, "lease.claiming")] == [STATION]
    assert len(_records(replica_b, "iec104.connected")) == 1
    for replica in (replica_a, replica_b):
        assert not [r for r in replica.records() if r.get("level") == "error"]
