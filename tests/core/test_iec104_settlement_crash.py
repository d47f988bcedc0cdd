"""A settlement record's Ended is one commit: a crash at any store batch boundary of it ends the
transaction exactly once (mappings/example-dialin-card.yaml).

Found by the fault harness's card charger (1,000-fault runs, seed 1606201): the Ended a record made
was committed in two store batches, because the driver (adapters/driver.py) commits a run of
`Persist` effects as one batch and carries out any other effect only after it — and the record's
acknowledgement (133) came between the Ended's outbox entry and `settled` key and the ledger's
"ended". A SIGKILL after the first batch left a bridge whose outbox held the Ended, whose `settled`
held the record, and whose ledger still had the transaction open: the points' end made a second
Ended (the resent record was a repeat and filled nothing), which waited `settlement_wait` and held
the next card session's Started behind it; restarts meanwhile lost that Started, and the next
session's charging was taken for the open transaction (events after its Ended at the CSMS).

Here the effects of the record's input are cut into the driver's batches, and the bench restarts
after each prefix of them, the effects released between committed batches carried out (the
acknowledgement among them), the charger sending the record again if it heard no acknowledgement.
"""

from __future__ import annotations

from typing import Any

from bridge.effects import Persist, Report, Send
from bridge.stations.iec104.southbound import Send104Command, Send104Private
from tests.core.iec104_bench import CHARGING, ENERGY, HOLSTERED, PLUG, Bench, idle, it, sp
from tests.core.test_iec104_card_restart import TABLE, settlement, start_charging, swipe

NEXT_CARD = "1234567890123457"


def driver_batches(effects: list[Any]) -> list[tuple[list[Persist], list[Any]]]:
    """The store batches the driver makes of one input's effects: each run of Persists (Reports do
    not end a run) with the effects it releases once committed (those up to the next run).
    Effects before the first run are carried out at once: they come first, with an empty run."""
    batches: list[tuple[list[Persist], list[Any]]] = [([], [])]
    for effect in effects:
        if isinstance(effect, Report):
            continue
        persists, released = batches[-1]
        if isinstance(effect, Persist):
            if released:
                batches.append(([effect], []))
            else:
                persists.append(effect)
        else:
            released.append(effect)
    return batches


def carry_out(bench: Bench, persists: list[Persist], released: list[Any]) -> None:
    for effect in persists:
        rows = bench.store.setdefault(effect.table, {})
        if effect.value is None:
            rows.pop(effect.key, None)
        else:
            rows[effect.key] = effect.value
    for effect in released:
        if isinstance(effect, Send104Private):
            bench.privates.append(effect)
        elif isinstance(effect, Send):
            bench._frame(effect.frame)


def session_ended_by_its_record() -> tuple[Bench, list[Any]]:
    """A card session charged and fell; its record comes: the effects of that input, not carried out."""
    bench = Bench(table=TABLE)
    bench.ready()
    swipe(bench)
    start_charging(bench)
    bench.points(it(ENERGY, 100_100), sp(CHARGING, False))
    bench.core.handle_link_event(settlement(), bench.now, bench.wall())
    return bench, bench.core.effects()


def delivered(bench: Bench) -> dict[str, dict[int, str]]:
    """transactionId → seqNo → eventType, as the CSMS has them (a redelivery is the same seqNo)."""
    found: dict[str, dict[int, str]] = {}
    for event in bench.events():
        seqs = found.setdefault(event["transactionInfo"]["transactionId"], {})
        assert seqs.setdefault(event["seqNo"], event["eventType"]) == event["eventType"]
    return found


def test_the_record_acknowledgement_follows_the_whole_ended_commit() -> None:
    _, effects = session_ended_by_its_record()
    batches = driver_batches(effects)
    committed = [p for persists, _ in batches for p in persists]
    assert any(
        p.table == "tx" and isinstance(p.value, dict) and p.value["ended"] for p in committed
    )
    (acked,) = [i for i, (_, released) in enumerate(batches) if any(
        isinstance(e, Send104Private) and e.type_id == 133 for e in released
    )]  # fmt: skip
    # everything the Ended changed is in the batches before the acknowledgement
    assert all(not persists for persists, _ in batches[acked + 1 :])


def test_a_crash_at_any_batch_of_the_records_ended_ends_the_transaction_once() -> None:
    _, effects = session_ended_by_its_record()
    for committed in range(len(driver_batches(effects)) + 1):
        crash_after(committed)


def crash_after(committed: int) -> None:
    bench, effects = session_ended_by_its_record()
    for persists, released in driver_batches(effects)[:committed]:
        carry_out(bench, persists, released)
    acked = any(p.type_id == 133 for p in bench.privates)
    bench.restart()  # SIGKILL: what the store holds is all that is left
    bench.connect_csms()
    bench.link_up(*idle(1), *idle(2), it(ENERGY, 100_100), it(ENERGY + 0x10, 5))
    if not acked:  # the charger keeps its record until acknowledged: again on the new link
        bench.core.handle_link_event(settlement(), bench.now, bench.wall())
        bench.drain()
    bench.advance(35)  # past settlement_wait: an Ended waiting for a record goes by now
    where = f"crash after {committed} batch(es)"
    assert any(p.type_id == 133 for p in bench.privates), where
    (transaction,) = delivered(bench).values()
    assert sorted(transaction.values()) == ["Ended", "Started"], (where, transaction)
    assert transaction[max(transaction)] == "Ended", where
    # the next card session is a transaction of its own, started with its card
    swipe(bench, NEXT_CARD)
    bench.points(sp(HOLSTERED, False), sp(PLUG, True), sp(CHARGING, True))
    bench.advance(3.5)
    assert len(delivered(bench)) == 2, where
    following = [e for e in bench.events() if e["eventType"] == "Started"][-1]
    assert following["idToken"] == {"idToken": NEXT_CARD, "type": "Local"}, where


def test_f01_a_remote_started_transaction_with_a_tx_profile_starts_in_one_commit() -> None:
    """The same for a Started: RequestStartTransaction with a TxProfile installs the profile and
    writes its setpoint when the Started is recorded; the setpoint command must not cut the
    Started's commit (the ledger's new transaction in one batch, its queued Started in another: a
    crash between kept a transaction the CSMS never hears started)."""
    bench = Bench()  # gb-dc-charger: a current setpoint per connector
    bench.ready()
    request = {
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
    bench.csms("RequestStartTransaction", request)
    bench.confirm()
    bench.points(sp(HOLSTERED, False), sp(PLUG, True), sp(CHARGING, True))
    commands = len(bench.commands)
    bench.core.point_updated(
        it(ENERGY, 100_050), bench.now, bench.wall()
    )  # the register: the Started goes
    batches = driver_batches(bench.core.effects())
    (with_started,) = [
        persists
        for persists, _ in batches
        if any(
            p.table == "outbox"
            and isinstance(p.value, dict)
            and p.value["payload"].get("eventType") == "Started"
            for p in persists
        )
    ]
    assert {(p.table, p.key) for p in with_started} >= {
        ("tx", "TX-0001"),  # the ledger's new transaction
        ("meta", "remote:1"),  # the accepted remote start it took, removed
        ("profiles", "9"),  # the TxProfile, installed for it
    }
    released = [e for _, after in batches for e in after]
    assert len([e for e in released if isinstance(e, Send104Command)]) == 1
    assert len(bench.commands) == commands  # the setpoint only after the commit
