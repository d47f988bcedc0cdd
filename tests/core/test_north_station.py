"""bridge.north.station.NorthStation: the 2.0.1 station the CSMS sees (B01–B04, G02, E04, E12–E14).

Driven frame by frame: CSMS frames go in through `receive`, the effects the owner would carry out come
out; every CALL the station sends is checked against the official 2.0.1 schemas.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from bridge.effects import Close, Effect, Persist, Report, Send, Side
from bridge.north.outbox import TABLE as OUTBOX
from bridge.north.station import (
    DEFAULT_HEARTBEAT,
    BootAnswered,
    Delivered,
    GaveUp,
    NorthSettings,
    NorthStation,
    OwnerEvent,
    Registered,
)
from bridge.ocppj.errors import OcppVersion, OutboundPayloadInvalid
from bridge.ocppj.rpc import CallFailed, CallReceived, ResultReceived
from bridge.ocppj.schema import PayloadKind
from tests.core.station_harness import SCHEMAS

IDENTITY = {"model": "Wallbox 22", "vendorName": "ACME"}
NOW = "2026-01-01T00:00:00Z"
State = dict[str, dict[str, Any]]


def started(tx: str = "T1", seq_no: int = 0, kind: str = "Started") -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": NOW,
        "triggerReason": "Authorized",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx},
    }


class Bench:
    """A NorthStation, its owner's effect list and a dict store."""

    def __init__(self, state: State | None = None, settings: NorthSettings | None = None) -> None:
        self.store: State = json.loads(json.dumps(state or {}))
        self.settings = settings or NorthSettings()
        self.ids = itertools.count(1)
        self.now = 0.0
        self.effects: list[Effect] = []
        self.calls: list[
            tuple[str, str, dict[str, Any]]
        ] = []  # every CALL sent: id, action, payload
        self.answers: list[list[Any]] = []  # every CALLRESULT / CALLERROR sent
        self.events: list[OwnerEvent] = []
        self.reports: list[Report] = []
        self.closes: list[Close] = []
        self.station = self._build()

    def _build(self) -> NorthStation:
        return NorthStation(
            "CS-1",
            SCHEMAS,
            lambda: f"n{next(self.ids)}",
            self.effects,
            json.loads(json.dumps(self.store)),
            now=self.now,
            settings=self.settings,
        )

    def restart(self) -> None:
        self.effects.clear()
        self.station = self._build()

    def drain(self) -> list[list[Any]]:
        """Flush, carry out the effects; returns the frames sent."""
        self.station.flush()
        frames = []
        for effect in self.effects:
            if isinstance(effect, Persist):
                rows = self.store.setdefault(effect.table, {})
                if effect.value is None:
                    rows.pop(effect.key, None)
                else:
                    rows[effect.key] = json.loads(json.dumps(effect.value))
            elif isinstance(effect, Report):
                self.reports.append(effect)
            elif isinstance(effect, Close):
                self.closes.append(effect)
            else:
                assert isinstance(effect, Send) and effect.side is Side.NORTH
                frame = json.loads(effect.frame)
                if frame[0] == 2:
                    violation = SCHEMAS.check(
                        OcppVersion.V201, frame[2], PayloadKind.REQUEST, frame[3]
                    )
                    assert violation is None, violation
                    self.calls.append((frame[1], frame[2], frame[3]))
                else:
                    self.answers.append(frame)
                frames.append(frame)
        self.effects.clear()
        return frames

    def _events(self, events: list[OwnerEvent]) -> list[OwnerEvent]:
        self.events += events
        return events

    def connect(self) -> list[OwnerEvent]:
        return self._events(self.station.connection_made(self.now))

    def disconnect(self) -> list[OwnerEvent]:
        return self._events(self.station.connection_lost(self.now))

    def at(self, now: float) -> list[OwnerEvent]:
        self.now = now
        return self._events(self.station.handle_timer(now))

    def receive(self, frame: list[Any]) -> list[OwnerEvent]:
        return self._events(self.station.receive(json.dumps(frame), self.now))

    def last_call(self) -> tuple[str, str, dict[str, Any]]:
        self.drain()
        return self.calls[-1]

    def actions(self) -> list[str]:
        self.drain()
        return [action for _, action, _ in self.calls]

    def answer(self, payload: dict[str, Any]) -> list[OwnerEvent]:
        message_id, _, _ = self.last_call()
        return self.receive([3, message_id, payload])

    def accept(self, interval: int = 300) -> list[OwnerEvent]:
        message_id, action, _ = self.last_call()
        assert action == "BootNotification"
        return self.receive(
            [3, message_id, {"status": "Accepted", "currentTime": NOW, "interval": interval}]
        )

    def registered(self, interval: int = 300) -> None:
        self.connect()
        self.accept(interval)
        assert self.station.registered


ANSWERS: dict[str, dict[str, Any]] = {
    "Heartbeat": {"currentTime": NOW},
    "Authorize": {"idTokenInfo": {"status": "Accepted"}},
}


def with_identity(**extra: Any) -> State:
    return {"north": {"identity": IDENTITY}, **extra}


# --- B01 registration ---------------------------------------------------------------------------------


def test_b01_no_boot_notification_without_identity() -> None:
    bench = Bench()
    assert bench.connect() == []
    assert bench.actions() == []
    assert bench.station.next_deadline() is None
    bench.at(10_000)
    assert bench.actions() == []


def test_b01_boot_on_connect_with_a_stored_identity() -> None:
    bench = Bench(with_identity())
    bench.connect()
    _, action, payload = bench.last_call()
    assert action == "BootNotification"
    assert payload == {"chargingStation": IDENTITY, "reason": "Unknown"}


def test_b01_set_identity_boots_a_link_waiting_for_one_and_persists_it() -> None:
    bench = Bench()
    bench.connect()
    bench.station.boot_reason = "PowerUp"
    bench.station.set_identity(IDENTITY, bench.now)
    _, action, payload = bench.last_call()
    assert (action, payload["reason"]) == ("BootNotification", "PowerUp")
    assert bench.store["north"]["identity"] == IDENTITY
    bench.restart()
    assert bench.station.identity == IDENTITY


def test_b01_accepted_registers_and_sets_the_heartbeat_interval() -> None:
    bench = Bench(with_identity())
    bench.connect()
    events = bench.accept(interval=120)
    assert isinstance(events[0], BootAnswered) and events[0].response["status"] == "Accepted"
    assert Registered(reconnect=False) in events
    assert bench.station.registered and bench.station.heartbeat_interval == 120


@pytest.mark.parametrize(("status", "interval", "retry"), [
    ("Pending", 20, 20.0),
    ("Pending", 0, 60.0),  # B02.FR.07: the station chooses (boot_retry_interval)
    ("Rejected", 45, 45.0),
    ("Rejected", 0, 60.0),
])  # fmt: skip
def test_b02_b03_not_accepted_boots_again_after_the_interval(
    status: str, interval: int, retry: float
) -> None:
    bench = Bench(with_identity())
    bench.connect()
    bench.answer({"status": status, "currentTime": NOW, "interval": interval})
    assert not bench.station.registered
    assert bench.station.next_deadline() == retry
    bench.at(retry - 0.5)
    assert bench.actions() == ["BootNotification"]
    bench.at(retry)
    assert bench.actions() == ["BootNotification", "BootNotification"]


def test_b02_nothing_but_boot_notification_before_accepted() -> None:
    bench = Bench(with_identity())
    bench.connect()
    bench.answer({"status": "Pending", "currentTime": NOW, "interval": 1000})
    station = bench.station
    station.report_status(1, 1, "Available", NOW, bench.now)
    station.enqueue("TransactionEvent", started(), bench.now)
    assert (
        station.call("Authorize", {"idToken": {"idToken": "A", "type": "Central"}}, 0, None)
        is False
    )
    bench.at(DEFAULT_HEARTBEAT * 3)  # well past any heartbeat, before the boot retry
    assert bench.actions() == ["BootNotification"]
    assert len(station.outbox) == 1  # queued, durable
    bench.at(1000)
    bench.accept()
    assert bench.actions() == ["BootNotification", "BootNotification", "StatusNotification"]
    bench.answer({})
    assert bench.actions()[-1] == "TransactionEvent"


def test_b02_csms_requests_still_reach_the_owner_while_pending() -> None:
    bench = Bench(with_identity())
    bench.connect()
    bench.answer({"status": "Pending", "currentTime": NOW, "interval": 100})
    events = bench.receive(
        [2, "s1", "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}]
    )
    assert [type(e) for e in events] == [CallReceived]
    bench.station.reply("s1", {"status": "Accepted"})
    assert bench.drain() == [[3, "s1", {"status": "Accepted"}]]


def test_b02_fr_04_a_new_identity_while_pending_does_not_boot_before_the_interval() -> None:
    bench = Bench(with_identity())
    bench.connect()
    bench.answer({"status": "Pending", "currentTime": NOW, "interval": 100})
    bench.now = 10
    bench.station.set_identity({**IDENTITY, "firmwareVersion": "2.0"}, bench.now)
    assert bench.actions() == ["BootNotification"]
    bench.at(100)
    _, action, payload = bench.last_call()
    assert action == "BootNotification" and payload["chargingStation"]["firmwareVersion"] == "2.0"


def test_b03_fr_08_requests_while_rejected_get_security_error() -> None:
    bench = Bench(with_identity())
    bench.connect()
    bench.answer({"status": "Rejected", "currentTime": NOW, "interval": 100})
    assert bench.receive([2, "s1", "GetTransactionStatus", {}]) == []
    assert bench.drain() == [[4, "s1", "SecurityError", bench.answers[-1][3], {}]]
    # accepted later: requests reach the owner again
    bench.at(100)
    bench.accept()
    assert [type(e) for e in bench.receive([2, "s2", "GetTransactionStatus", {}])] == [CallReceived]


def test_b01_owner_boot_answer_registers_and_comes_back_with_its_context() -> None:
    bench = Bench()
    bench.connect()
    payload = {"reason": "PowerUp", "chargingStation": IDENTITY}
    assert bench.station.boot(payload, bench.now, context="charger-boot") is True
    bench.drain()
    assert bench.store["north"]["identity"] == IDENTITY
    events = bench.answer({"status": "Accepted", "currentTime": NOW, "interval": 60})
    kinds = [type(e) for e in events]
    assert kinds == [BootAnswered, Registered, ResultReceived]
    result = events[-1]
    assert isinstance(result, ResultReceived) and result.request.context == "charger-boot"
    assert bench.station.heartbeat_interval == 60


def test_b01_owner_boot_while_offline_is_refused_but_keeps_the_identity() -> None:
    bench = Bench()
    assert bench.station.boot({"reason": "PowerUp", "chargingStation": IDENTITY}, 0, None) is False
    bench.drain()
    assert bench.store["north"]["identity"] == IDENTITY


def test_b01_fr_05_statuses_are_sent_again_after_a_new_accepted_boot() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.station.report_status(2, 1, "Occupied", NOW, bench.now)
    bench.answer({})
    bench.answer({})
    assert bench.actions().count("StatusNotification") == 2
    # the charger below rebooted: its boot is relayed and accepted again
    bench.station.boot({"reason": "PowerUp", "chargingStation": IDENTITY}, bench.now, None)
    bench.accept()
    bench.answer({})
    assert bench.actions()[-2:] == ["StatusNotification", "StatusNotification"]


# --- B04-style reconnect ---------------------------------------------------------------------------


def test_b04_reconnect_after_acceptance_registers_without_a_boot_and_resends_statuses() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.answer({})
    bench.disconnect()
    assert not bench.station.registered
    bench.station.report_status(1, 1, "Occupied", NOW, bench.now)  # while away: cached only
    bench.station.report_status(2, 1, "Available", NOW, bench.now)
    assert bench.actions() == ["BootNotification", "StatusNotification"]
    events = bench.connect()
    assert events == [Registered(reconnect=True)]
    bench.drain()
    sent = [(a, p.get("evseId"), p.get("connectorStatus")) for _, a, p in bench.calls[2:]]
    assert sent == [("StatusNotification", 1, "Occupied")]  # one at a time
    bench.answer({})
    bench.drain()
    sent = [(a, p.get("evseId"), p.get("connectorStatus")) for _, a, p in bench.calls[2:]]
    assert sent == [("StatusNotification", 1, "Occupied"), ("StatusNotification", 2, "Available")]


def test_b04_a_restarted_bridge_boots_again() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.restart()
    bench.connect()
    assert bench.actions()[-1] == "BootNotification"


def test_g01_unchanged_status_is_not_sent_twice() -> None:
    bench = Bench(with_identity())
    bench.registered()
    for _ in range(3):
        bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.answer({})
    assert bench.actions().count("StatusNotification") == 1
    assert bench.station.status_of(1) == "Available" and bench.station.connectors() == [(1, 1)]


def test_e04_statuses_never_overtake_queued_transaction_events() -> None:
    """Issue 16 item 3: after an outage the current Available went out before the queued Updated and
    Ended of the transaction that had ended."""
    bench = Bench(with_identity())
    bench.registered()
    bench.station.report_status(1, 1, "Occupied", NOW, bench.now)
    bench.answer({})
    bench.disconnect()
    bench.station.enqueue("TransactionEvent", started(seq_no=1, kind="Updated"), bench.now)
    bench.station.enqueue("TransactionEvent", started(seq_no=2, kind="Ended"), bench.now)
    bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.connect()
    for _ in range(3):
        bench.answer({})
    sent = [(a, p.get("eventType") or p.get("connectorStatus")) for _, a, p in bench.calls[2:]]
    assert sent == [
        ("TransactionEvent", "Updated"),
        ("TransactionEvent", "Ended"),
        ("StatusNotification", "Available"),
    ]


def test_e04_a_transaction_event_never_overtakes_a_status_reported_before_it() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(seq_no=0), bench.now)
    bench.station.report_status(1, 1, "Occupied", NOW, bench.now)
    bench.station.enqueue("TransactionEvent", started(seq_no=1, kind="Updated"), bench.now)
    for _ in range(3):
        bench.answer({})
    assert bench.actions()[1:] == ["TransactionEvent", "StatusNotification", "TransactionEvent"]


def test_g01_the_latest_status_is_delivered_until_acknowledged() -> None:
    """Issue 16 item 4: a StatusNotification that went unanswered was dropped; the CSMS showed
    Occupied for good."""
    settings = NorthSettings(call_timeout=30, late_answer_wait=90, message_attempt_interval=10)
    bench = Bench(with_identity(), settings=settings)
    bench.registered()
    bench.station.report_status(1, 1, "Occupied", NOW, bench.now)
    bench.answer({})
    bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.drain()
    bench.at(30)
    bench.at(120)  # never answered: the connection is given up
    bench.disconnect()
    bench.connect()
    bench.at(130)  # the unanswered attempt counted: again after the attempt interval
    bench.drain()
    assert [p["connectorStatus"] for _, a, p in bench.calls if a == "StatusNotification"] == [
        "Occupied",
        "Available",
        "Available",
    ]
    # a CALLERROR is retried after the attempt interval, until the CSMS takes it
    message_id, _, _ = bench.last_call()
    bench.receive([4, message_id, "InternalError", "restarting", {}])
    bench.at(bench.now + 30)
    assert bench.actions().count("StatusNotification") == 4
    bench.answer({})
    bench.at(bench.now + 600)
    assert bench.actions().count("StatusNotification") == 4


def test_f06_a_triggered_status_is_sent_also_when_unchanged_with_its_own_timestamp() -> None:
    """Issue 16 item 5: a triggered StatusNotification was swallowed when the status had not changed."""
    later = "2026-01-01T00:10:00Z"
    bench = Bench(with_identity())
    bench.registered()
    bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.answer({})
    bench.station.report_status(1, 1, "Available", later, bench.now)  # not triggered: nothing
    assert bench.actions().count("StatusNotification") == 1
    bench.station.report_status(1, 1, "Available", later, bench.now, triggered=True)
    _, action, payload = bench.last_call()
    assert (action, payload["connectorStatus"], payload["timestamp"]) == (
        "StatusNotification",
        "Available",
        later,
    )


def test_g01_an_unchanged_status_keeps_the_time_it_began() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.report_status(1, 1, "Available", NOW, bench.now)
    bench.answer({})
    bench.station.report_status(1, 1, "Available", "2026-01-01T00:10:00Z", bench.now)
    bench.disconnect()
    bench.connect()
    _, action, payload = bench.last_call()
    assert (action, payload["timestamp"]) == ("StatusNotification", NOW)


# --- G02 heartbeat ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "expected"), [(100, 100), (0, DEFAULT_HEARTBEAT)])
def test_g02_heartbeat_every_interval_while_registered(interval: int, expected: int) -> None:
    bench = Bench(with_identity())
    bench.registered(interval=interval)
    assert bench.station.next_deadline() == expected
    bench.at(expected - 1)
    assert "Heartbeat" not in bench.actions()
    bench.at(expected)
    assert bench.actions()[-1] == "Heartbeat"
    bench.answer({"currentTime": NOW})
    bench.at(2 * expected)
    assert bench.actions().count("Heartbeat") == 2
    bench.answer({"currentTime": NOW})
    bench.disconnect()
    assert bench.station.next_deadline() is None
    bench.at(10 * expected)
    assert bench.actions().count("Heartbeat") == 2


# --- outbox delivery ----------------------------------------------------------------------------------


def test_e12_outbox_delivered_in_order_only_when_registered() -> None:
    bench = Bench(with_identity())
    station = bench.station
    station.enqueue("TransactionEvent", started(seq_no=0), 0)
    station.enqueue("TransactionEvent", started(seq_no=1, kind="Updated"), 0)
    bench.drain()
    assert len(bench.store[OUTBOX]) == 2 and bench.calls == []
    bench.connect()
    assert bench.actions() == ["BootNotification"]
    bench.accept()
    assert bench.actions()[-1] == "TransactionEvent"
    events = bench.answer({})
    assert [type(e) for e in events] == [Delivered]
    assert bench.actions()[-1] == "TransactionEvent"
    assert bench.calls[-1][2]["seqNo"] == 1
    bench.answer({})
    bench.drain()
    assert bench.store[OUTBOX] == {} and len(station.outbox) == 0


@pytest.mark.parametrize(("registered", "offline"), [(False, True), (True, None)])
def test_e04_fr_03_offline_flag_when_queued_while_not_registered(
    registered: bool, offline: bool | None
) -> None:
    bench = Bench(with_identity())
    if registered:
        bench.registered()
    bench.station.enqueue("TransactionEvent", started(), bench.now)
    bench.station.enqueue("SecurityEventNotification", {"type": "X", "timestamp": NOW}, 0)
    bench.drain()
    rows = list(bench.store[OUTBOX].values())
    assert rows[0]["payload"].get("offline") == offline
    assert "offline" not in rows[1]["payload"]


def test_e04_an_invalid_payload_is_refused_when_queued() -> None:
    bench = Bench(with_identity())
    with pytest.raises(OutboundPayloadInvalid):
        bench.station.enqueue("TransactionEvent", {"eventType": "Started"}, 0)
    assert len(bench.station.outbox) == 0


def test_e13_callerror_retried_after_interval_then_given_up() -> None:
    settings = NorthSettings(message_attempts=3, message_attempt_interval=10)
    bench = Bench(with_identity(), settings=settings)
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(), bench.now)
    bench.station.enqueue("TransactionEvent", started(seq_no=1, kind="Ended"), bench.now)
    ids = []
    for attempt in (1, 2):
        message_id, action, payload = bench.last_call()
        assert (action, payload["seqNo"]) == ("TransactionEvent", 0)
        ids.append(message_id)
        bench.receive([4, message_id, "InternalError", "busy", {}])
        bench.drain()
        due = bench.now + 10 * attempt
        assert bench.station.next_deadline() == due
        bench.at(due - 0.1)
        assert bench.last_call()[0] == message_id  # nothing new yet
        bench.at(due)
    message_id, _, _ = bench.last_call()
    assert message_id not in ids  # a fresh id for every attempt
    events = bench.receive([4, message_id, "InternalError", "busy", {}])
    assert [type(e) for e in events] == [GaveUp]
    bench.drain()
    assert "outbox-gave-up" in [r.diagnostic.kind for r in bench.reports]
    assert bench.calls[-1][2]["seqNo"] == 1  # the next one goes
    assert len(bench.store[OUTBOX]) == 1


def test_e13_a_late_answer_on_a_live_link_is_the_answer_and_nothing_is_resent() -> None:
    """Issue 16 item 1: the CSMS answered seqNo 5 54 ms after the call timeout; the bridge had resent it
    on the same connection, and the CSMS stored it twice."""
    settings = NorthSettings(call_timeout=30, message_attempts=3, message_attempt_interval=10)
    bench = Bench(with_identity(), settings=settings)
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(seq_no=5), bench.now)
    first, _, _ = bench.last_call()
    bench.at(30)  # the call timeout passes: the call stays outstanding
    bench.at(60)  # a 60 s stall: still nothing resent
    assert bench.actions().count("TransactionEvent") == 1
    bench.now = 60.054
    events = bench.receive([3, first, {}])
    assert [type(e) for e in events] == [Delivered]
    bench.at(600)
    assert bench.actions().count("TransactionEvent") == 1
    assert len(bench.store[OUTBOX]) == 0
    kinds = [r.diagnostic.kind for r in bench.reports]
    assert "late-answer" in kinds and "resend" not in kinds and bench.closes == []


def test_e13_no_answer_at_all_gives_the_connection_up_and_resends_on_the_next() -> None:
    settings = NorthSettings(
        call_timeout=30, late_answer_wait=90, message_attempts=2, message_attempt_interval=10
    )
    bench = Bench(with_identity(), settings=settings)
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(), bench.now)
    bench.drain()
    bench.at(119)
    assert bench.closes == []
    bench.at(120)  # call timeout + late_answer_wait: the connection is given up
    bench.drain()
    assert [c.side for c in bench.closes] == [Side.NORTH]
    assert not bench.station.online and not bench.station.registered
    assert bench.station.outbox._entries[0].attempts == 1  # no answer at all is an attempt (E13)
    bench.disconnect()  # the adapter closed it
    bench.connect()  # a new connection: registered again, the entry goes after its interval
    bench.at(130)
    assert bench.actions().count("TransactionEvent") == 2
    resends = [r.diagnostic for r in bench.reports if r.diagnostic.kind == "resend"]
    assert [d.fields["reason"] for d in resends] == ["unanswered"]
    assert "csms-unresponsive" in [r.diagnostic.kind for r in bench.reports]


def test_e13_without_late_answer_wait_a_timeout_is_an_attempt() -> None:
    settings = NorthSettings(
        call_timeout=30, message_attempts=2, message_attempt_interval=10, late_answer_wait=None
    )
    bench = Bench(with_identity(), settings=settings)
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(), bench.now)
    bench.drain()
    bench.at(30)  # no answer: attempt 1 failed
    assert bench.station.outbox._entries[0].attempts == 1
    bench.at(40)
    assert bench.actions().count("TransactionEvent") == 2
    events = bench.at(70)
    assert [type(e) for e in events] == [GaveUp]


def test_e13_the_owners_call_is_failed_at_its_timeout_and_gets_its_late_answer() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.call("Authorize", {"idToken": {"idToken": "A", "type": "ISO14443"}}, 0, "ctx")
    message_id, _, _ = bench.last_call()
    events = bench.at(30)
    assert [(type(e), e.request.context) for e in events] == [(CallFailed, "ctx")]
    events = bench.receive([3, message_id, ANSWERS["Authorize"]])
    assert [(type(e), e.request.context) for e in events] == [(ResultReceived, "ctx")]


def test_e12_connection_loss_is_not_an_attempt() -> None:
    settings = NorthSettings(message_attempts=1)
    bench = Bench(with_identity(), settings=settings)
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(), bench.now)
    first, _, _ = bench.last_call()
    events = bench.disconnect()
    assert [type(e) for e in events] == []
    bench.connect()  # re-registered without a boot: the same entry goes again
    second, action, payload = bench.last_call()
    assert (action, payload["seqNo"]) == ("TransactionEvent", 0) and second != first
    assert bench.station.outbox._entries[0].attempts == 0
    bench.answer({})
    bench.drain()
    assert bench.store[OUTBOX] == {}


def test_e12_outbox_survives_a_restart() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.enqueue("TransactionEvent", started(), bench.now)
    bench.station.enqueue("TransactionEvent", started(seq_no=1, kind="Ended"), bench.now)
    bench.drain()
    bench.restart()  # the in-flight Started was never answered
    bench.connect()
    bench.accept()
    bench.drain()
    assert [p["seqNo"] for _, a, p in bench.calls if a == "TransactionEvent"] == [0, 0]
    bench.answer({})
    assert bench.last_call()[2]["seqNo"] == 1


# --- E14 GetTransactionStatus support -------------------------------------------------------------------


def test_e14_messages_in_queue_per_transaction() -> None:
    bench = Bench(with_identity())
    bench.station.enqueue("TransactionEvent", started(tx="A"), 0)
    assert bench.station.messages_in_queue("A") and not bench.station.messages_in_queue("B")
    bench.registered()
    bench.answer({})  # delivered
    assert not bench.station.messages_in_queue("A")


# --- direct calls -------------------------------------------------------------------------------------


def test_c01_direct_call_answer_comes_back_with_the_owner_context() -> None:
    bench = Bench(with_identity())
    bench.registered()
    token = {"idToken": {"idToken": "AB", "type": "Central"}}
    assert bench.station.call("Authorize", token, bench.now, context=("authorize", "c1"))
    events = bench.answer({"idTokenInfo": {"status": "Accepted"}})
    assert isinstance(events[0], ResultReceived) and events[0].request.context == (
        "authorize",
        "c1",
    )


def test_c01_direct_call_fails_with_the_connection() -> None:
    bench = Bench(with_identity())
    bench.registered()
    bench.station.call("Authorize", {"idToken": {"idToken": "AB", "type": "Central"}}, 0, "ctx")
    events = bench.disconnect()
    assert [type(e) for e in events] == [CallFailed]


def test_rpc_a_full_call_queue_never_raises_on_peer_input() -> None:
    """Statuses, heartbeats, the outbox and direct calls while the CSMS is slow to answer."""
    bench = Bench(with_identity(), settings=NorthSettings(max_queued_calls=2))
    bench.registered()
    station = bench.station
    station.enqueue("TransactionEvent", started(), bench.now)  # in flight, unanswered
    for n in range(6):
        station.report_status(1, 1, ["Available", "Occupied"][n % 2], NOW, bench.now)
        station.report_status(2 + n, 1, "Available", NOW, bench.now)
    token = {"idToken": {"idToken": "AB", "type": "Central"}}
    results = [station.call("Authorize", token, bench.now, None) for _ in range(3)]
    assert results[-1] is False  # answer locally rather than queue without bound
    bench.at(DEFAULT_HEARTBEAT)
    # once the CSMS answers, every connector's newest status reaches it
    for _ in range(40):
        if not bench.station._endpoint.outstanding:
            break
        bench.answer(ANSWERS.get(bench.last_call()[1], {}))
    sent = {}
    for _, action, payload in bench.calls:
        if action == "StatusNotification":
            sent[payload["evseId"]] = payload["connectorStatus"]
    assert sent == {1: "Occupied", **{2 + n: "Available" for n in range(6)}}


# --- issue 16 item 10: date-times without an offset from the CSMS ----------------------------------


def test_b01_a_boot_answer_with_an_offset_less_time_registers_the_station() -> None:
    """A CSMS sending `2026-12-07T10:00:00.123` left 1.6 stations Pending for ever."""
    bench = Bench(with_identity())
    bench.connect()
    message_id, _, _ = bench.last_call()
    answer = {"status": "Accepted", "currentTime": "2026-12-07T10:00:00.123", "interval": 300}
    events = bench.receive([3, message_id, answer])
    assert isinstance(events[0], BootAnswered)
    assert events[0].response["currentTime"] == "2026-12-07T10:00:00.123Z"
    assert bench.station.registered
    bench.station.call("Heartbeat", {}, bench.now, "hb")
    message_id, _, _ = bench.last_call()
    bench.receive([3, message_id, {"currentTime": "2026-12-07T10:00:01"}])
    warned = [r for r in bench.reports if r.diagnostic.kind == "timestamp-without-offset"]
    assert len(warned) == 1  # once per connection


def test_b01_strict_timestamps_keep_refusing_offset_less_times() -> None:
    bench = Bench(with_identity(), settings=NorthSettings(naive_times_as_utc=False))
    bench.connect()
    message_id, _, _ = bench.last_call()
    answer = {"status": "Accepted", "currentTime": "2026-12-07T10:00:00.123", "interval": 300}
    bench.receive([3, message_id, answer])
    assert not bench.station.registered
