"""Two bridge processes (`ocpp-bridge run`) with the same station under leases on one PostgreSQL (a real
server, tests/pg.py; issue 20 item 2): the charger starts a transaction through replica A; A is paused
(SIGSTOP) or killed (SIGKILL); the charger connects to replica B, which takes the station over and ends
the transaction with the same id and the next seqNo. A paused A, resumed, learns at its next renewal
that it lost the station and closes the charger's old connection (1013) without writing anything."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from bridge.effects import CLOSE_TRY_AGAIN_LATER
from tests.e2e.test_passthrough import BOOT
from tests.e2e.test_v16 import STATION, boot, events
from tests.faults.harness import BridgeProcess, bridge_toml, free_port
from tests.peers import connected_charger, connected_charger16, now_iso, running_csms


def _config(folder: Path, store: str, csms_url: str, extra: str = "") -> tuple[Path, int]:
    folder.mkdir()
    port = free_port()
    text = bridge_toml(store=store, csms_url=csms_url, south_port=port, stations=[STATION]) + extra
    config = folder / "bridge.toml"
    config.write_text(
        text.replace("[bridge]\n", "[bridge]\nleases = true\nlease_seconds = 1.0\n", 1)
    )
    return config, port


@pytest.mark.parametrize("fault", [signal.SIGSTOP, signal.SIGKILL], ids=["paused", "killed"])
async def test_e01_e06_a_replica_paused_or_killed_its_charger_ends_the_transaction_through_another(
    tmp_path: Path, pg_url: str, fault: signal.Signals
) -> None:
    async with running_csms() as csms:
        config_a, port_a = _config(tmp_path / "a", pg_url, csms.url)
        config_b, port_b = _config(tmp_path / "b", pg_url, csms.url)
        replica_a = BridgeProcess(config_a, tmp_path / "a")
        replica_b = BridgeProcess(config_b, tmp_path / "b")
        try:
            await replica_a.start()
            await replica_b.start()
            async with connected_charger16(f"ws://127.0.0.1:{port_a}/ocpp", STATION) as (
                charger,
                old,
                _,
            ):
                await boot(charger)
                start = await charger.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag="TAG-8", meter_start=100, timestamp=now_iso()
                    )
                )
                await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
                assert replica_a.process is not None
                replica_a.process.send_signal(fault)
                async with connected_charger16(f"ws://127.0.0.1:{port_b}/ocpp", STATION) as (
                    moved,
                    _,
                    _,
                ):
                    await moved.call(
                        call16.StopTransaction(
                            transaction_id=start.transaction_id,
                            meter_stop=900,
                            timestamp=now_iso(),
                        )
                    )
                    await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=30)
                    if fault == signal.SIGSTOP:
                        replica_a.process.send_signal(signal.SIGCONT)
                        async with asyncio.timeout(20):
                            await old.wait_closed()  # A let go at its next renewal
                        assert old.close_code == CLOSE_TRY_AGAIN_LATER
                    await asyncio.sleep(1.5)  # A's renewal ticks: nothing more reaches the CSMS
            started, ended = events(csms, "Started"), events(csms, "Ended")
            assert len(started) == 1 and len(ended) == 1, (started, ended)
            assert (
                ended[0]["transaction_info"]["transaction_id"]
                == started[0]["transaction_info"]["transaction_id"]
            )
            assert [started[0]["seq_no"], ended[0]["seq_no"]] == [0, 1]
            assert csms.problems() == []
        finally:
            if replica_a.process is not None and replica_a.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    replica_a.process.send_signal(signal.SIGCONT)
            await replica_a.stop()
            await replica_b.stop()
        lost = [r for r in replica_a.records() if r.get("event") == "lease.lost"]
        assert len(lost) == (1 if fault == signal.SIGSTOP else 0)
        assert not [r for r in replica_a.records() if r.get("level") == "error"]
        assert not [r for r in replica_b.records() if r.get("level") == "error"]


async def test_e04_a_killed_replicas_queue_is_delivered_by_another_without_its_charger(
    tmp_path: Path, pg_url: str
) -> None:
    """Replica A queues an Ended while the CSMS is down and is SIGKILLed; the charger never comes
    back. Replica B finds the station orphaned once A's lease expires (its sweep) and delivers the
    queue: the same transaction id, seqNo 1, once (issue 20 item 3)."""
    async with running_csms() as csms:
        config_a, port_a = _config(tmp_path / "a", pg_url, csms.url)
        config_b, _ = _config(tmp_path / "b", pg_url, csms.url)
        replica_a = BridgeProcess(config_a, tmp_path / "a")
        replica_b = BridgeProcess(config_b, tmp_path / "b")
        try:
            await replica_a.start()
            await replica_b.start()
            async with connected_charger16(f"ws://127.0.0.1:{port_a}/ocpp", STATION) as (
                charger,
                _,
                _,
            ):
                await boot(charger)
                start = await charger.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag="TAG-9", meter_start=100, timestamp=now_iso()
                    )
                )
                await csms.wait_for(lambda: len(events(csms, "Started")) == 1)
                port = csms.port
                await csms.stop()
                await charger.call(
                    call16.StopTransaction(
                        transaction_id=start.transaction_id, meter_stop=900, timestamp=now_iso()
                    )
                )  # answered: the Ended is in the store
                await replica_a.kill()
            await csms.start(port=port)
            await csms.wait_for(lambda: len(events(csms, "Ended")) == 1, timeout=30)
            await asyncio.sleep(1.0)  # nothing more arrives
        finally:
            await replica_a.stop()
            await replica_b.stop()
        started, ended = events(csms, "Started"), events(csms, "Ended")
        assert len(started) == 1 and len(ended) == 1, (started, ended)
        assert (
            ended[0]["transaction_info"]["transaction_id"]
            == started[0]["transaction_info"]["transaction_id"]
        )
        assert ended[0]["seq_no"] == 1 and ended[0]["offline"] is True
        adopted = [r for r in replica_b.records() if r.get("event") == "lease.adopting"]
        assert [r["station_id"] for r in adopted] == [STATION]
        assert not [r for r in replica_b.records() if r.get("level") == "error"]


def _lease_of(pg_url: str, station: str) -> tuple[int, int] | None:
    """(pid of the owner, epoch) of the station's lease row in PostgreSQL, read directly."""
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT owner, epoch FROM leases WHERE station = %s", (station,)
        ).fetchone()
    if row is None:
        return None
    return int(row[0].split("/")[1]), int(row[1])


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_b01_a_pass_through_station_holds_its_lease_while_its_charger_is_connected(
    tmp_path: Path, pg_url: str
) -> None:
    """OCPP 2.0.1 pass-through under leases: the charger's connection holds the station's lease
    (read from PostgreSQL); a connection to another replica takes it over, and the first replica,
    paused meanwhile, closes its old connection with 1013 at its next renewal, so the CSMS is left
    with the successor's connection only; the last connection's end releases the lease."""
    extra = '[[stations]]\nid = "CP201"\nprotocol = "ocpp2.0.1"\n'
    async with running_csms() as csms:
        config_a, port_a = _config(tmp_path / "a", pg_url, csms.url, extra)
        config_b, port_b = _config(tmp_path / "b", pg_url, csms.url, extra)
        replica_a = BridgeProcess(config_a, tmp_path / "a")
        replica_b = BridgeProcess(config_b, tmp_path / "b")
        try:
            await replica_a.start()
            await replica_b.start()
            assert replica_a.process is not None and replica_b.process is not None
            async with connected_charger(f"ws://127.0.0.1:{port_a}/ocpp", "CP201") as (
                charger,
                old,
                _,
            ):
                assert (await charger.call(BOOT)).status == "Accepted"
                lease = _lease_of(pg_url, "CP201")
                assert lease is not None and lease[0] == replica_a.process.pid
                replica_a.process.send_signal(signal.SIGSTOP)
                try:
                    async with connected_charger(f"ws://127.0.0.1:{port_b}/ocpp", "CP201") as (
                        moved,
                        _,
                        _,
                    ):
                        await moved.call(call201.Heartbeat())
                        moved_lease = _lease_of(pg_url, "CP201")
                        assert moved_lease == (replica_b.process.pid, lease[1] + 1)
                        replica_a.process.send_signal(signal.SIGCONT)
                        async with asyncio.timeout(20):
                            await old.wait_closed()  # A let go at its next renewal
                        assert old.close_code == CLOSE_TRY_AGAIN_LATER
                        assert old.close_reason == "station served elsewhere"
                        first = csms.history[0]
                        await asyncio.wait_for(first.closed.wait(), 10)
                        assert not csms.history[-1].closed.is_set()  # B's, still up
                        await moved.call(call201.Heartbeat())
                        assert _lease_of(pg_url, "CP201") == moved_lease
                finally:
                    replica_a.process.send_signal(signal.SIGCONT)
            await _until(lambda: _lease_of(pg_url, "CP201") is None)
            assert [s.station_id for s in csms.history] == ["CP201", "CP201"]
            assert csms.problems() == []
        finally:
            await replica_a.stop()
            await replica_b.stop()
        lost = [r for r in replica_a.records() if r.get("event") == "lease.lost"]
        assert [r["station_id"] for r in lost] == ["CP201"]
        for replica in (replica_a, replica_b):
            assert not [r for r in replica.records() if r.get("level") == "error"]
