"""Every step that makes a TransactionEvent is one store commit ahead of its other effects.

The driver (adapters/driver.py) commits a run of `Persist` effects as one batch and carries out any
other effect only after it; a write after a frame or a command is a second commit. A step that made
a transaction event in two commits lost half of it to a crash in between. Found after f4fa36f (the
settlement record's Ended, tests/core/test_iec104_settlement_crash.py): a Started that goes in the
step that saw the start (`meter_wait` 0, or a table without a meter point) was committed with the
ledger's new transaction and its outbox entry, and the end rules' memory (`meta` `ends:<evse>`)
the same step wrote came in a later batch, after the Started's frame: a restart in between found
the transaction without that memory, and an end that was already true at the restart was no edge
(the transaction never ended).

Here every step of sessions started and ended every way the tables allow (points, a remote start
and stop, card start and stop, a settlement record, one that makes a whole session) is recorded,
and each step that queues a TransactionEvent must be one batch, with nothing carried out before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.effects import Persist
from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.core import Station104, Station104Settings
from tests.core.iec104_bench import (
    CHARGING,
    DC_TABLE,
    ENERGY,
    HOLSTERED,
    PLUG,
    Bench,
    idle,
    it,
    sp,
)
from tests.core.test_iec104_card_restart import TABLE as CARD_TABLE
from tests.core.test_iec104_card_restart import settlement, swipe
from tests.core.test_iec104_settlement_crash import carry_out, delivered, driver_batches


@dataclass
class Recording(Bench):
    """A bench that keeps the effects of every step (every call of the core's `effects`)."""

    steps: list[list[Any]] = field(default_factory=list)

    def _build(self) -> Station104:
        core = super()._build()
        take = core.effects

        def effects() -> list[Any]:
            made = take()
            if made:
                self.steps.append(list(made))
            return made

        core.effects = effects  # type: ignore[method-assign]
        return core


def event_types(step: list[Any]) -> list[str]:
    return [
        p.value["payload"]["eventType"]
        for p in step
        if isinstance(p, Persist)
        and p.table == "outbox"
        and isinstance(p.value, dict)
        and p.value.get("action") == "TransactionEvent"
    ]


def check_one_commit(bench: Recording) -> list[str]:
    """Each step that queued a TransactionEvent: its writes one batch, nothing released before."""
    seen: list[str] = []
    for step in bench.steps:
        kinds = event_types(step)
        if not kinds:
            continue
        seen += kinds
        batches = driver_batches(step)
        writing = [index for index, (persists, _) in enumerate(batches) if persists]
        assert writing == [0], (kinds, [type(e).__name__ for e in step])
        assert not batches[0][1] or all(not p for p, _ in batches[1:]), kinds
    return seen


SETTINGS = {
    "waiting": Station104Settings(),
    "no-wait": Station104Settings(meter_wait=0),
}


def charge_and_stop_by_points(bench: Recording) -> None:
    bench.points(sp(HOLSTERED, False), sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)
    bench.advance(bench.core.tx_updated_interval + 1)  # a periodic Updated
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(35)  # the register, or settlement_wait on a card table
    bench.points(sp(PLUG, False))
    bench.advance(3.5)


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
@pytest.mark.parametrize("table", [DC_TABLE, CARD_TABLE], ids=["gb-dc", "dialin-card"])
def test_e01_e06_events_from_points_are_one_commit_each(
    table: CompiledTable, settings: str
) -> None:
    bench = Recording(table=table, settings=SETTINGS[settings])
    bench.ready()
    charge_and_stop_by_points(bench)
    assert check_one_commit(bench) == ["Started", "Updated", "Ended"]


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_f01_f03_a_remote_start_and_stop_are_one_commit_each(settings: str) -> None:
    bench = Recording(settings=SETTINGS[settings])
    bench.ready()
    bench.csms("RequestStartTransaction", REMOTE_START)
    bench.confirm()
    bench.points(sp(HOLSTERED, False), sp(PLUG, True))  # Started on the plug: accepted start
    bench.advance(3.5)
    bench.points(sp(CHARGING, True))
    (started,) = [e for e in bench.events() if e["eventType"] == "Started"]
    bench.csms(
        "RequestStopTransaction", {"transactionId": started["transactionInfo"]["transactionId"]}
    )
    bench.confirm()
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.advance(3.5)
    assert check_one_commit(bench) == ["Started", "Updated", "Ended"]


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_c_card_start_stop_and_records_are_one_commit_each(settings: str) -> None:
    bench = Recording(table=CARD_TABLE, settings=SETTINGS[settings])
    bench.ready()
    swipe(bench)
    bench.points(sp(HOLSTERED, False), sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)
    swipe(bench)  # the stop card
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.core.handle_link_event(settlement(), bench.now, bench.wall())  # the record ends it
    bench.drain()
    # a record of a session the bridge never saw: its Started and Ended from the record
    bench.core.handle_link_event(
        settlement("1234567890123457", 100_100, 100_200), bench.now, bench.wall()
    )
    bench.drain()
    # a record while the transaction runs ends it (no fall of charging seen)
    bench.points(sp(CHARGING, True))
    bench.advance(3.5)
    bench.core.handle_link_event(
        settlement("1234567890123458", 100_200, 100_300), bench.now, bench.wall()
    )
    bench.drain()
    assert check_one_commit(bench) == [
        "Started",
        "Ended",
        "Started",
        "Ended",
        "Started",
        "Ended",
    ], bench.events()


REMOTE_START = {
    "idToken": {"idToken": "CARD-1", "type": "ISO14443"},
    "remoteStartId": 7,
    "evseId": 1,
    "chargingProfile": {
        "id": 9,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
            }
        ],
    },
}


def started_in_its_step(table: CompiledTable) -> tuple[Bench, list[Any]]:
    """meter_wait 0: an accepted remote start with a TxProfile; the Started goes in the step that
    saw the vehicle plugged in, with the profile's setpoint command. That step's effects, not done."""
    bench = Bench(table=table, settings=Station104Settings(meter_wait=0))
    bench.ready()
    bench.csms("RequestStartTransaction", REMOTE_START)
    bench.confirm()
    bench.points(sp(HOLSTERED, False))
    bench.core.point_updated(sp(PLUG, True), bench.now, bench.wall())
    return bench, bench.core.effects()


@pytest.mark.parametrize("table", [DC_TABLE, CARD_TABLE], ids=["gb-dc", "dialin-card"])
def test_f01_a_crash_at_any_batch_of_a_started_without_register_wait_loses_no_end(
    table: CompiledTable,
) -> None:
    """After every prefix of the Started's batches and a restart, a vehicle that was unplugged
    while the bridge was down ends the transaction it started (once), or none was started.
    Failed before: the end rules' memory was a batch after the setpoint command, and a restart
    between found no memory, so the unplugged vehicle was no edge (the transaction stayed open)."""
    _, effects = started_in_its_step(table)
    assert len([p for p, _ in driver_batches(effects) if p]) == 1
    for committed in range(len(driver_batches(effects)) + 1):
        bench, effects = started_in_its_step(table)
        for persists, released in driver_batches(effects)[:committed]:
            carry_out(bench, persists, released)
        bench.restart()
        bench.connect_csms()
        bench.link_up(*idle(1), it(ENERGY, 100_000))  # unplugged meanwhile
        bench.advance(35)
        where = f"crash after {committed} batch(es)"
        transactions = delivered(bench)
        assert len(transactions) <= 1, where
        for seqs in transactions.values():
            assert sorted(seqs.values()) == ["Ended", "Started"], (where, seqs)
        if committed >= 1:  # the Started was durable: the CSMS has it, and its end
            assert len(transactions) == 1, where
