"""bridge.stations.iec104.core.Station104: an IEC 104 charger as a 2.0.1 station, without sockets.

Driven by `tests.core.iec104_bench.Bench`: 104 point updates and command confirmations in, frames to the
CSMS (each checked against the official schemas), 104 commands and interrogations out. Test names carry
the OCPP 2.0.1 use case or the 104 behaviour they exercise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mapping_files import compile_file
from bridge.stations.iec104.core import Station104Settings
from bridge.stations.iec104.southbound import CommandConfirmed, LinkDown, LinkUp, PointUpdate
from bridge.stations.iec104.vocabulary import TypeId
from tests.core.iec104_bench import (
    CHARGING,
    CURRENT_LIMIT,
    EMERGENCY_STOP,
    ENERGY,
    FAULTED,
    HOLSTERED,
    OUT_OF_SERVICE,
    PLUG,
    POWER_LIMIT,
    RESET,
    SERVICE,
    START_STOP,
    UNLOCK,
    VOLTAGE,
    Bench,
    fl,
    idle,
    iso,
    it,
    sp,
)

TOKEN = {"idToken": "CARD-1", "type": "ISO14443"}


def remote_start(bench: Bench, evse: int = 1, remote_id: int = 7) -> str:
    return bench.csms(
        "RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": remote_id, "evseId": evse}
    )


def profile(
    limit: float, unit: str = "A", purpose: str = "TxDefaultProfile", **extra: object
) -> dict[str, object]:
    periods = extra.pop("periods", [{"startPeriod": 0, "limit": limit}])
    schedule = {
        "id": 1,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods,
        **extra.pop("schedule", {}),  # type: ignore[dict-item]
    }
    return {
        "id": extra.pop("id", 1),
        "stackLevel": extra.pop("stack_level", 0),
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": extra.pop("kind", "Absolute"),
        "chargingSchedule": [schedule],
        **extra,
    }


def charging_session(bench: Bench) -> str:
    """Plugged, remotely started, charging: the transaction id."""
    bench.points(sp(PLUG, True))
    remote_start(bench)
    bench.confirm()
    bench.points(it(ENERGY, 100_000), sp(CHARGING, True))
    return str(bench.events()[0]["transactionInfo"]["transactionId"])


class TestB01Registration:
    def test_boot_notification_carries_the_tables_identity(self) -> None:
        bench = Bench()
        bench.connect_csms()
        boot = bench.calls("BootNotification")[0]
        assert boot["chargingStation"] == {"vendorName": "Generic GB/T", "model": "GB-DC"}

    def test_statuses_wait_until_the_rules_can_decide(self) -> None:
        bench = Bench()
        bench.connect_csms()
        bench.link_up(sp(HOLSTERED, True))  # the fault points are still unknown
        assert bench.statuses() == []
        bench.points(*idle(1))
        assert bench.statuses() == ["Available"]


class TestG01ConnectorStatus:
    def test_plug_in_and_out(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True), sp(PLUG, True))
        bench.points(sp(PLUG, False))
        assert bench.statuses() == ["Available", "Occupied", "Available"]
        assert bench.statuses(2) == ["Available"]

    def test_a_charger_level_fault_faults_every_connector(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(EMERGENCY_STOP, True))
        assert bench.statuses(1)[-1] == bench.statuses(2)[-1] == "Faulted"

    def test_out_of_service_is_unavailable(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(OUT_OF_SERVICE, True))
        assert bench.statuses()[-1] == "Unavailable"

    def test_invalid_quality_makes_a_point_unknown(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(PointUpdate(FAULTED, "M_SP_NA_1", False, frozenset({"Invalid"})))
        bench.points(sp(PLUG, True))  # Faulted might be true: the status cannot be decided
        assert bench.statuses() == ["Available"]


class Test104PointsThatDoNotFit:
    def test_unknown_ioa_is_reported_once_and_changes_nothing(self) -> None:
        bench = Bench()
        bench.ready()
        before = list(bench.sent)
        bench.points(sp(0x0FFF, True), sp(0x0FFF, False), sp(0x0FFF, True))
        assert bench.report_kinds() == ["unknown-ioa"]
        assert bench.sent == before

    def test_mismatched_type_is_reported_once_and_ignored(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(fl(PLUG, 1.0), fl(PLUG, 1.0))
        assert bench.report_kinds() == ["mismatched-type"]
        assert bench.statuses() == ["Available"]

    def test_the_time_tagged_twin_is_the_same_point(self) -> None:
        bench = Bench()
        bench.ready()
        tagged = PointUpdate(PLUG, "M_SP_TB_1", True, timestamp=1_767_225_700.0)
        bench.points(tagged)
        assert bench.statuses() == ["Available", "Occupied"]
        notification = bench.calls("StatusNotification")[-1]
        assert notification["timestamp"] == "2026-01-01T00:01:40Z"  # the time tag, in UTC
        assert bench.report_kinds() == []

    def test_a_command_point_reported_as_monitoring(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(START_STOP, True))
        assert bench.report_kinds() == ["unknown-ioa"]


class TestE02RemoteStartedTransaction:
    def test_f01_start_command_then_started_with_the_fresh_register(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True))
        message_id = remote_start(bench)
        command = bench.commands[-1]
        assert (command.ioa, command.type_id, command.value, command.select) == (
            START_STOP,
            TypeId.C_SC_NA_1,
            True,
            False,
        )
        assert bench.answer_to(message_id) is None  # answered on ACT_CON
        bench.confirm()
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.payload == {"status": "Accepted"}
        assert bench.events() == []  # waiting for the counter interrogation
        assert bench.interrogations[-1].counters
        bench.points(it(ENERGY, 123_456))
        started = bench.events()[0]
        assert started["eventType"] == "Started"
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 7
        assert started["idToken"] == TOKEN
        assert started["seqNo"] == 0
        register = started["meterValue"][0]["sampledValue"][0]
        assert register == {
            "value": 1_234_560,
            "context": "Transaction.Begin",
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
        }

    def test_the_register_wait_ends_with_the_last_known_value(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True), sp(CHARGING, True))
        assert bench.events() == []
        bench.advance(3.5)
        started = bench.events()[0]
        assert started["triggerReason"] == "ChargingStateChanged"
        assert started["meterValue"][0]["sampledValue"][0]["value"] == 1_000_000

    def test_charging_state_changes_and_periodic_meter_values(self) -> None:
        bench = Bench()
        bench.ready()
        charging_session(bench)
        bench.points(fl(VOLTAGE, 750.0), it(ENERGY, 100_500))
        bench.advance(60)
        kinds = [(e["eventType"], e["triggerReason"]) for e in bench.events()]
        assert kinds == [
            ("Started", "RemoteStart"),
            ("Updated", "ChargingStateChanged"),
            ("Updated", "MeterValuePeriodic"),
        ]
        sample = {
            sv["measurand"]: sv["value"]
            for sv in bench.events()[2]["meterValue"][0]["sampledValue"]
        }
        assert sample == {"Voltage": 750, "Energy.Active.Import.Register": 1_005_000}

    def test_f03_remote_stop_ends_with_reason_remote(self) -> None:
        bench = Bench()
        bench.ready()
        tx = charging_session(bench)
        message_id = bench.csms("RequestStopTransaction", {"transactionId": tx})
        stop = bench.commands[-1]
        assert (stop.ioa, stop.value) == (START_STOP, False)
        bench.confirm()
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]
        bench.points(sp(CHARGING, False), it(ENERGY, 100_700))
        ended = bench.events()[-1]
        assert ended["eventType"] == "Ended"
        assert ended["triggerReason"] == "RemoteStop"
        assert ended["transactionInfo"]["stoppedReason"] == "Remote"
        assert ended["meterValue"][0]["sampledValue"][0]["value"] == 1_007_000
        assert [e["seqNo"] for e in bench.events()] == list(range(len(bench.events())))

    def test_unplugging_ends_with_ev_disconnected(self) -> None:
        bench = Bench()
        bench.ready()
        charging_session(bench)
        bench.points(sp(PLUG, False))
        bench.advance(3.5)
        ended = bench.events()[-1]
        assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        assert ended["triggerReason"] == "EVCommunicationLost"

    def test_a_negative_confirmation_rejects_and_starts_nothing(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True))
        message_id = remote_start(bench)
        bench.confirm(positive=False)
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.payload["status"] == "Rejected"
        assert answer.payload["statusInfo"]["reasonCode"] == "CommandRejected"
        bench.advance(5)
        assert bench.events() == []

    def test_no_confirmation_within_4_s_is_a_truthful_rejection(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True))
        message_id = remote_start(bench)
        bench.advance(3.9)
        assert bench.answer_to(message_id) is None
        bench.advance(0.2)
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.payload["status"] == "Rejected"
        assert answer.payload["statusInfo"]["reasonCode"] == "NoConfirmation"
        bench.confirm()  # late: reported, and the CSMS was told Rejected: it starts nothing
        assert "late-confirmation" in bench.report_kinds()
        bench.advance(5)
        assert bench.events() == []
        bench.points(sp(CHARGING, True), it(ENERGY, 100_000))  # the charger charges after all
        (started,) = bench.events()
        assert started["triggerReason"] == "ChargingStateChanged"
        assert "remoteStartId" not in started["transactionInfo"]

    def test_a_late_confirmation_after_the_session_makes_no_phantom_transaction(self) -> None:
        """Fault harness (issue 16): a start the CSMS was told Rejected (NoConfirmation), confirmed
        after the vehicle had charged by itself and stopped, made a Started (RemoteStart, the
        rejected remoteStartId) for a session the charger never had: the plug was still in and
        the late confirmation counted as an acceptance for `command_acceptance` (120 s)."""
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True))
        remote_start(bench)
        bench.advance(4.1)  # answered Rejected, NoConfirmation
        bench.points(it(ENERGY, 100_000), sp(CHARGING, True))
        bench.points(sp(CHARGING, False), it(ENERGY, 100_300))
        assert [e["eventType"] for e in bench.events()] == ["Started", "Ended"]
        bench.confirm()  # the start command's confirmation, at last
        bench.advance(5)
        bench.points(sp(PLUG, False))
        bench.points(sp(PLUG, True))  # the next vehicle, within command_acceptance
        bench.advance(5)
        assert [e["eventType"] for e in bench.events()] == ["Started", "Ended"]

    def test_a_start_confirmed_during_a_transaction_arms_nothing_for_the_next_vehicle(
        self,
    ) -> None:
        """F01: the charger began charging by itself before it confirmed the start command: the
        confirmation finds the transaction running. It must not stay an acceptance for 120 s,
        which started a transaction for the next vehicle as soon as it was plugged in, with this
        request's remoteStartId, whether it charged or not."""
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True))
        message_id = remote_start(bench)
        bench.points(it(ENERGY, 100_000), sp(CHARGING, True))
        bench.confirm()
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]
        bench.points(sp(CHARGING, False), it(ENERGY, 100_300))
        bench.points(sp(PLUG, False))
        bench.points(sp(PLUG, True))  # the next vehicle, within command_acceptance
        bench.advance(5)
        assert [e["eventType"] for e in bench.events()] == ["Started", "Ended"]

    def test_start_while_the_link_is_down_is_rejected_at_once(self) -> None:
        bench = Bench()
        bench.ready()
        bench.link_down()
        message_id = remote_start(bench)
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.payload["statusInfo"]["reasonCode"] == "ChargerOffline"
        assert bench.commands == []

    def test_start_on_a_busy_evse_is_rejected_with_its_transaction(self) -> None:
        bench = Bench()
        bench.ready()
        tx = charging_session(bench)
        answer = bench.answer_to(remote_start(bench))
        assert answer is not None
        assert answer.payload["status"] == "Rejected"
        assert answer.payload["transactionId"] == tx


class TestE02LinkLoss:
    def test_connectors_unavailable_after_the_grace_then_back(self) -> None:
        bench = Bench(settings=Station104Settings(link_grace=10))
        bench.ready()
        bench.link_down()
        bench.advance(9)
        assert bench.statuses() == ["Available"]
        bench.advance(2)
        assert bench.statuses() == ["Available", "Unavailable"]
        assert bench.statuses(2) == ["Available", "Unavailable"]
        bench.link_up(*idle(1), *idle(2))
        assert bench.statuses() == ["Available", "Unavailable", "Available"]

    def test_a_short_drop_inside_the_grace_is_not_seen(self) -> None:
        bench = Bench(settings=Station104Settings(link_grace=10))
        bench.ready()
        bench.link_down()
        bench.advance(2)
        bench.link_up(*idle(1), *idle(2))
        assert bench.statuses() == ["Available"]

    def test_a_transaction_continues_across_the_drop(self) -> None:
        bench = Bench(settings=Station104Settings(link_grace=1))
        bench.ready()
        charging_session(bench)
        bench.link_down()
        bench.advance(2)
        assert bench.statuses()[-1] == "Unavailable"
        back = [u for u in idle(1) if u.ioa not in (PLUG, CHARGING, HOLSTERED)]
        bench.link_up(*back, sp(PLUG, True), sp(HOLSTERED, False), sp(CHARGING, True))
        assert bench.statuses()[-1] == "Occupied"
        assert [e["eventType"] for e in bench.events()].count("Started") == 1
        bench.points(sp(CHARGING, False))
        bench.advance(3.5)
        assert bench.events()[-1]["eventType"] == "Ended"
        assert [e["seqNo"] for e in bench.events()] == list(range(len(bench.events())))

    def test_a_transaction_that_ended_while_the_link_was_down_ends_on_return(self) -> None:
        bench = Bench(settings=Station104Settings(link_grace=1))
        bench.ready()
        charging_session(bench)
        bench.link_down()
        bench.link_up(*idle(1))  # unplugged meanwhile
        bench.advance(3.5)
        assert bench.events()[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"


def waiting_for_power(bench: Bench) -> str:
    """Plugged and remotely started, not charging yet (the vehicle is still shaking hands): the
    transaction id. Its end rule `not charging` is true from its start."""
    bench.points(sp(PLUG, True), sp(HOLSTERED, False))
    remote_start(bench)
    bench.confirm()
    bench.advance(3.5)
    (started,) = bench.events()
    assert started["triggerReason"] == "RemoteStart"
    return str(started["transactionInfo"]["transactionId"])


def interrogation(*, charging: bool, energy: int = 100_000) -> list[PointUpdate]:
    """The general interrogation after a link's return or a restart: the charger's status points
    first, so the rules see the connector's points unknown for a while; plugged in."""
    back = [u for u in idle(1) if u.ioa not in (PLUG, CHARGING, HOLSTERED)]
    return [*back, sp(PLUG, True), sp(HOLSTERED, False), sp(CHARGING, charging), it(ENERGY, energy)]


class TestE02RemoteStartWaitingForPower:
    """Regressions found by the fault harness (tests/faults, seeds 10 and 14 of the short run): a
    remotely started transaction that was not charging yet was Ended (Local) by the link's return or
    by a restart, because its end rule `not charging`, true since the start, was taken for a new edge
    (unknown while the interrogation was half way, or forgotten by the restart); when charging then
    rose, a second Started followed for the same session."""

    def finish(self, bench: Bench, tx: str) -> None:
        bench.points(it(ENERGY, 100_100), sp(CHARGING, True))
        bench.points(sp(CHARGING, False), it(ENERGY, 100_300))
        bench.advance(3.5)
        events = bench.events()
        assert [e["eventType"] for e in events] == ["Started", "Updated", "Ended"]
        assert {e["transactionInfo"]["transactionId"] for e in events} == {tx}
        assert [e["seqNo"] for e in events] == [0, 1, 2]
        ended = events[-1]
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        end = ended["meterValue"][0]["sampledValue"][0]
        assert (end["context"], end["value"]) == ("Transaction.End", 1_003_000)

    def test_a_link_drop_does_not_end_it(self) -> None:
        bench = Bench(settings=Station104Settings(link_grace=10))
        bench.ready()
        tx = waiting_for_power(bench)
        bench.link_down()
        bench.link_up(*interrogation(charging=False))
        bench.advance(3.5)
        assert [e["eventType"] for e in bench.events()] == ["Started"]
        self.finish(bench, tx)

    def test_a_restart_does_not_end_it(self) -> None:
        bench = Bench()
        bench.ready()
        tx = waiting_for_power(bench)
        bench.restart()
        bench.connect_csms()
        bench.link_up(*interrogation(charging=False))
        bench.advance(3.5)
        assert [e["eventType"] for e in bench.events()] == ["Started"]
        self.finish(bench, tx)

    def test_a_restart_then_a_link_drop_does_not_end_it(self) -> None:
        bench = Bench()
        bench.ready()
        tx = waiting_for_power(bench)
        bench.restart()
        bench.connect_csms()
        bench.link_up(*interrogation(charging=False))
        bench.link_down()
        bench.link_up(*interrogation(charging=False))
        bench.advance(3.5)
        self.finish(bench, tx)

    def test_charging_that_rose_while_the_bridge_was_down_continues_it(self) -> None:
        bench = Bench()
        bench.ready()
        tx = waiting_for_power(bench)
        bench.restart()
        bench.connect_csms()
        bench.link_up(*interrogation(charging=True, energy=100_100))
        bench.advance(3.5)
        events = bench.events()
        assert [e["eventType"] for e in events] == ["Started", "Updated"]
        assert events[-1]["transactionInfo"]["chargingState"] == "Charging"
        bench.points(sp(CHARGING, False), it(ENERGY, 100_300))
        bench.advance(3.5)
        assert [e["eventType"] for e in bench.events()] == ["Started", "Updated", "Ended"]
        assert {e["transactionInfo"]["transactionId"] for e in bench.events()} == {tx}


class TestF01RemoteStartAcrossARestart:
    """An accepted RequestStartTransaction is durable before the CSMS hears Accepted: a restart between
    the answer and the Started (found by the fault harness: a SIGKILL there gave a Started without the
    remoteStartId, 3 times in a 1,000-fault run) still links the transaction to the request."""

    def started_after_restart(self, bench: Bench) -> dict[str, object]:
        bench.restart()
        bench.connect_csms()
        bench.link_up(*interrogation(charging=False))
        bench.points(sp(CHARGING, True))
        bench.advance(3.5)
        (started,) = [e for e in bench.events() if e["eventType"] == "Started"]
        return started

    def test_restart_before_the_vehicle_is_plugged_in(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = remote_start(bench, remote_id=42)
        bench.confirm()
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.payload["status"] == "Accepted"
        assert bench.store["meta"]["remote:1"]["remote"]["remoteStartId"] == 42
        started = self.started_after_restart(bench)
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 42
        assert started["idToken"] == TOKEN
        assert "remote:1" not in bench.store["meta"]  # gone with the Started, in its commit

    def test_restart_while_the_started_waits_for_its_register(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(sp(PLUG, True), sp(HOLSTERED, False))
        remote_start(bench, remote_id=43)
        bench.confirm()  # plugged in and accepted: the transaction starts, its register is asked for
        assert bench.events() == []
        assert "remote:1" in bench.store["meta"]
        started = self.started_after_restart(bench)
        assert started["transactionInfo"]["remoteStartId"] == 43
        assert "remote:1" not in bench.store["meta"]

    def test_an_expired_acceptance_is_forgotten_at_restart(self) -> None:
        bench = Bench(settings=Station104Settings(command_acceptance=60))
        bench.ready()
        remote_start(bench, remote_id=44)
        bench.confirm()
        bench.advance(61)
        started = self.started_after_restart(bench)
        assert started["triggerReason"] != "RemoteStart"
        assert "remoteStartId" not in started["transactionInfo"]
        assert "remote:1" not in bench.store["meta"]

    def test_a_refused_start_stores_nothing(self) -> None:
        bench = Bench()
        bench.ready()
        remote_start(bench)
        bench.confirm(positive=False)
        assert "remote:1" not in bench.store.get("meta", {})


class TestRestart:
    def test_charging_that_fell_while_the_bridge_was_down_ends_it_on_return(self) -> None:
        bench = Bench()
        bench.ready()
        tx = charging_session(bench)
        bench.restart()
        bench.connect_csms()
        bench.link_up(*interrogation(charging=False, energy=100_500))
        bench.advance(3.5)
        ended = bench.events()[-1]
        assert ended["eventType"] == "Ended"
        assert ended["transactionInfo"]["transactionId"] == tx
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["meterValue"][0]["sampledValue"][0]["value"] == 1_005_000
        assert [e["eventType"] for e in bench.events()].count("Started") == 1

    def test_a_restart_while_the_ended_waits_for_its_register_still_ends_it(self) -> None:
        """Found by the fault harness (long run, seed 3729373379): the bridge was killed after it saw
        charging fall and before the Ended had its register; restarted, it found the transaction
        without the end rules' memory, took the fall for no edge, and the next session's charging
        became part of the same transaction (its Ended carried the next session's register)."""
        bench = Bench()
        bench.ready()
        tx = charging_session(bench)
        bench.points(sp(CHARGING, False))  # the end is found; the Ended waits for the counter
        assert "Ended" not in [e["eventType"] for e in bench.events()]
        assert "ends:1" in bench.store["meta"]  # the memory stays until the Ended is recorded
        bench.restart()
        bench.connect_csms()
        bench.link_up(*interrogation(charging=False, energy=100_500))
        bench.advance(3.5)
        ended = bench.events()[-1]
        assert ended["eventType"] == "Ended"
        assert ended["transactionInfo"]["transactionId"] == tx
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["meterValue"][0]["sampledValue"][0]["value"] == 1_005_000
        assert "ends:1" not in bench.store["meta"]
        bench.points(it(ENERGY, 100_600), sp(CHARGING, True))  # the next session
        bench.advance(3.5)
        started = [e for e in bench.events() if e["eventType"] == "Started"]
        assert len(started) == 2
        assert started[1]["transactionInfo"]["transactionId"] != tx

    def test_the_end_rules_memory_is_dropped_with_the_transaction(self) -> None:
        bench = Bench()
        bench.ready()
        waiting_for_power(bench)
        assert "ends:1" in bench.store["meta"]
        bench.points(sp(PLUG, False))
        bench.advance(3.5)
        assert bench.events()[-1]["eventType"] == "Ended"
        assert "ends:1" not in bench.store["meta"]

    def test_a_restart_mid_transaction_resumes_the_ledger(self) -> None:
        bench = Bench()
        bench.ready()
        tx = charging_session(bench)
        bench.restart()
        bench.connect_csms()
        bench.link_up(*[u for u in idle(1) if u.ioa not in (PLUG, CHARGING)])
        bench.points(sp(PLUG, True), sp(CHARGING, True))
        assert [e["eventType"] for e in bench.events()].count("Started") == 1
        bench.points(sp(CHARGING, False))
        bench.advance(3.5)
        ended = bench.events()[-1]
        assert ended["eventType"] == "Ended"
        assert ended["transactionInfo"]["transactionId"] == tx
        assert [e["seqNo"] for e in bench.events()] == list(range(len(bench.events())))


class TestF05F06G03B11OtherCommands:
    def test_unlock(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = bench.csms("UnlockConnector", {"evseId": 1, "connectorId": 1})
        assert bench.commands[-1].ioa == UNLOCK
        bench.confirm()
        assert bench.answer_to(message_id).payload == {"status": "Unlocked"}  # type: ignore[union-attr]

    def test_unlock_during_a_transaction(self) -> None:
        bench = Bench()
        bench.ready()
        charging_session(bench)
        message_id = bench.csms("UnlockConnector", {"evseId": 1, "connectorId": 1})
        assert bench.answer_to(message_id).payload == {"status": "OngoingAuthorizedTransaction"}  # type: ignore[union-attr]

    def test_change_availability_of_the_station_commands_every_connector(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = bench.csms("ChangeAvailability", {"operationalStatus": "Inoperative"})
        sent = bench.commands[-2:]
        assert [(c.ioa, c.value) for c in sent] == [(SERVICE, True), (SERVICE + 0x10, True)]
        bench.confirm(sent[0])
        assert bench.answer_to(message_id) is None
        bench.confirm(sent[1])
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]

    def test_reset_on_idle_waits_for_the_transaction(self) -> None:
        bench = Bench()
        bench.ready()
        charging_session(bench)
        count = len(bench.commands)
        message_id = bench.csms("Reset", {"type": "OnIdle"})
        assert bench.answer_to(message_id).payload == {"status": "Scheduled"}  # type: ignore[union-attr]
        assert len(bench.commands) == count
        bench.points(sp(CHARGING, False))
        bench.advance(3.5)
        assert bench.commands[-1].ioa == RESET

    def test_reset_immediate(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = bench.csms("Reset", {"type": "Immediate"})
        assert bench.commands[-1].ioa == RESET
        bench.confirm()
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]

    def test_trigger_status_notification(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = bench.csms(
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "evse": {"id": 2, "connectorId": 1}},
        )
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]
        assert bench.statuses(2) == ["Available", "Available"]

    def test_everything_else_is_not_supported(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = bench.csms("ClearCache", {})
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.kind == 4
        assert answer.payload["code"] == "NotSupported"

    def test_get_transaction_status(self) -> None:
        bench = Bench()
        bench.ready()
        tx = charging_session(bench)
        message_id = bench.csms("GetTransactionStatus", {"transactionId": tx})
        answer = bench.answer_to(message_id)
        assert answer is not None
        assert answer.payload == {"messagesInQueue": False, "ongoingIndicator": True}


class TestK01ChargingProfiles:
    def test_set_charging_profile_writes_the_setpoint_and_follows_the_periods(self) -> None:
        bench = Bench()
        bench.ready()
        periods = [{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 600, "limit": 10.0}]
        request = profile(16.0, periods=periods, schedule={"startSchedule": iso(bench.wall())})
        message_id = bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": request})
        write = bench.commands[-1]
        assert (write.ioa, write.type_id, write.value) == (CURRENT_LIMIT, TypeId.C_SE_NC_1, 16.0)
        bench.confirm()
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]
        bench.advance(599)
        assert bench.commands[-1] is write
        bench.advance(2)
        assert (bench.commands[-1].ioa, bench.commands[-1].value) == (CURRENT_LIMIT, 10.0)

    def test_the_higher_stack_level_wins_and_lower_shows_through_after_it(self) -> None:
        bench = Bench()
        bench.ready()
        start = iso(bench.wall())
        low = profile(32.0, id=1, stack_level=0, schedule={"startSchedule": start})
        high = profile(8.0, id=2, stack_level=5, schedule={"startSchedule": start, "duration": 60})
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": low})
        bench.confirm()
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": high})
        bench.confirm()
        assert bench.commands[-1].value == 8.0
        bench.advance(61)
        assert bench.commands[-1].value == 32.0

    def test_a_station_power_limit_goes_to_the_station_setpoint_in_kw(self) -> None:
        bench = Bench()
        bench.ready()
        request = profile(
            60_000.0,
            unit="W",
            purpose="ChargingStationMaxProfile",
            schedule={"startSchedule": iso(bench.wall())},
        )
        bench.csms("SetChargingProfile", {"evseId": 0, "chargingProfile": request})
        assert (bench.commands[-1].ioa, bench.commands[-1].value) == (0x6300, 60.0)

    def test_power_profile_on_an_evse_uses_the_kw_setpoint(self) -> None:
        bench = Bench()
        bench.ready()
        request = profile(22_000.0, unit="W", schedule={"startSchedule": iso(bench.wall())})
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": request})
        assert (bench.commands[-1].ioa, bench.commands[-1].value) == (POWER_LIMIT, 22.0)

    def test_a_tx_profile_needs_a_transaction(self) -> None:
        bench = Bench()
        bench.ready()
        request = profile(16.0, purpose="TxProfile")
        message_id = bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": request})
        answer = bench.answer_to(message_id)
        assert answer is not None and answer.payload["status"] == "Rejected"
        assert answer.payload["statusInfo"]["reasonCode"] == "TxNotFound"

    def test_clear_charging_profile(self) -> None:
        bench = Bench()
        bench.ready()
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": profile(16.0)})
        bench.confirm()
        message_id = bench.csms("ClearChargingProfile", {"chargingProfileId": 1})
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]
        unknown = bench.csms("ClearChargingProfile", {"chargingProfileId": 1})
        assert bench.answer_to(unknown).payload == {"status": "Unknown"}  # type: ignore[union-attr]
        assert "limit-kept" in bench.report_kinds()  # the default table gives no maximum

    def test_limits_are_written_again_after_the_link_returns(self) -> None:
        bench = Bench()
        bench.ready()
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": profile(16.0)})
        bench.confirm()
        count = len(bench.commands)
        bench.link_down()
        bench.link_up(*idle(1))
        assert len(bench.commands) == count + 1
        assert bench.commands[-1].value == 16.0


class TestB06B07B08DeviceModel:
    def test_get_variables_from_the_table_and_live_values(self) -> None:
        bench = Bench()
        bench.ready()
        bench.points(fl(VOLTAGE, 401.5))
        wanted = [
            {"component": {"name": "ChargingStation"}, "variable": {"name": "Model"}},
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}},
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "AvailabilityState"},
            },
            {
                "component": {"name": "Iec104Point", "evse": {"id": 1}},
                "variable": {"name": "output_voltage"},
            },
            {
                "component": {"name": "Iec104Point", "evse": {"id": 1}},
                "variable": {"name": "work_status"},
            },
            {"component": {"name": "Nothing"}, "variable": {"name": "X"}},
            {"component": {"name": "ChargingStation"}, "variable": {"name": "X"}},
        ]
        message_id = bench.csms("GetVariables", {"getVariableData": wanted})
        results = bench.answer_to(message_id).payload["getVariableResult"]  # type: ignore[union-attr]
        values = [r.get("attributeValue", r["attributeStatus"]) for r in results]
        assert values == [
            "GB-DC",
            "60",
            "Available",
            "401.5",
            "idle",
            "UnknownComponent",
            "UnknownVariable",
        ]

    def test_set_tx_updated_interval(self) -> None:
        bench = Bench()
        bench.ready()
        item = {
            "component": {"name": "SampledDataCtrlr"},
            "variable": {"name": "TxUpdatedInterval"},
            "attributeValue": "15",
        }
        read_only = {
            "component": {"name": "ChargingStation"},
            "variable": {"name": "Model"},
            "attributeValue": "X",
        }
        message_id = bench.csms("SetVariables", {"setVariableData": [item, read_only]})
        results = bench.answer_to(message_id).payload["setVariableResult"]  # type: ignore[union-attr]
        assert [r["attributeStatus"] for r in results] == ["Accepted", "Rejected"]
        assert bench.core.tx_updated_interval == 15
        charging_session(bench)
        bench.advance(16)
        assert bench.events()[-1]["triggerReason"] == "MeterValuePeriodic"
        bench.restart()
        assert bench.core.tx_updated_interval == 15  # durable

    def test_get_base_report(self) -> None:
        bench = Bench()
        bench.ready()
        message_id = bench.csms("GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"})
        assert bench.answer_to(message_id).payload == {"status": "Accepted"}  # type: ignore[union-attr]
        reports = bench.calls("NotifyReport")
        assert [r["seqNo"] for r in reports] == list(range(len(reports)))
        assert not reports[-1].get("tbc") and all(r["tbc"] for r in reports[:-1])
        names = {
            (d["component"]["name"], d["variable"]["name"])
            for r in reports
            for d in r["reportData"]
        }
        assert ("SampledDataCtrlr", "TxUpdatedInterval") in names
        assert ("Iec104Point", "energy_total") in names
        summary = bench.csms("GetBaseReport", {"requestId": 4, "reportBase": "SummaryInventory"})
        assert bench.answer_to(summary).payload == {"status": "Accepted"}  # type: ignore[union-attr]


def test_handle_link_event_dispatches_every_kind() -> None:
    bench = Bench()
    bench.connect_csms()
    bench.core.handle_link_event(LinkUp(), bench.now, bench.wall())
    for update in idle(1):
        bench.core.handle_link_event(update, bench.now, bench.wall())
    bench.drain()
    assert bench.statuses() == ["Available"]
    bench.core.handle_link_event(CommandConfirmed(99, START_STOP, True), bench.now, bench.wall())
    bench.core.handle_link_event(LinkDown("x"), bench.now, bench.wall())
    bench.drain()
    assert "unknown-command" in bench.report_kinds()
    assert not bench.core.link_is_up


# --- property: random order and duplicates never break a transaction's event stream -------------

_UPDATES = st.sampled_from(
    [
        *[sp(PLUG, True), sp(PLUG, False), sp(CHARGING, True), sp(CHARGING, False)] * 3,
        sp(FAULTED, True),
        sp(FAULTED, False),
        sp(EMERGENCY_STOP, True),
        sp(EMERGENCY_STOP, False),
        sp(HOLSTERED, True),
        sp(HOLSTERED, False),
        it(ENERGY, 100_000),
        it(ENERGY, 100_100),
        it(ENERGY, 100_200),
        fl(VOLTAGE, 400.0),
        PointUpdate(CHARGING, "M_SP_NA_1", True, frozenset({"Invalid"})),
    ]
)
_POINT = st.tuples(st.just("point"), _UPDATES)
_STEP = st.one_of(  # mostly points: a branch of one_of is drawn uniformly
    *[_POINT] * 8,
    st.tuples(st.just("advance"), st.sampled_from([0.5, 2.0, 4.0, 61.0])),
    st.tuples(st.just("link"), st.booleans()),
    st.tuples(st.just("remote"), st.booleans()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, min_size=10, max_size=80))
def test_points_in_any_order_never_give_a_second_started_or_a_seq_no_gap(
    steps: list[tuple[str, object]],
) -> None:
    bench = Bench(settings=Station104Settings(link_grace=1.0))
    bench.ready()
    for kind, arg in steps:
        if kind == "point":
            assert isinstance(arg, PointUpdate)
            bench.points(arg, arg) if arg.ioa == CHARGING else bench.points(arg)
        elif kind == "advance":
            assert isinstance(arg, float)
            bench.advance(arg)
        elif kind == "link":
            if arg:
                bench.link_up()
            else:
                bench.link_down()
        else:
            remote_start(bench)
            if bench.commands:
                bench.confirm(positive=bool(arg))
    bench.advance(10)
    by_tx: dict[str, list[dict[str, object]]] = {}
    active: dict[int, str | None] = {1: None, 2: None}
    for event in bench.events():
        tx = event["transactionInfo"]["transactionId"]  # type: ignore[index]
        evse = event["evse"]["id"]  # type: ignore[index]
        by_tx.setdefault(tx, []).append(event)
        if event["eventType"] == "Started":
            assert active[evse] is None, "a second Started while a transaction runs"
            active[evse] = tx
        else:
            assert active[evse] == tx
        if event["eventType"] == "Ended":
            active[evse] = None
    for tx, stream in by_tx.items():
        assert [e["seqNo"] for e in stream] == list(range(len(stream))), tx
        assert [e["eventType"] for e in stream].count("Started") == 1
        assert stream[0]["eventType"] == "Started"
        assert [e["eventType"] for e in stream[:-1]].count("Ended") == 0


@pytest.mark.parametrize("duplicates", [1, 3])
def test_duplicate_updates_change_nothing(duplicates: int) -> None:
    bench = Bench()
    bench.ready()
    for update in [sp(PLUG, True), sp(CHARGING, True), it(ENERGY, 100_300)] * duplicates:
        bench.points(update)
    bench.advance(3.5)
    assert [e["eventType"] for e in bench.events()] == ["Started"]
    assert bench.statuses() == ["Available", "Occupied"]


def test_a_point_with_report_becomes_notify_event_on_change(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor.yaml"
    vendor.write_text(
        "extends: gb-dc-charger\n"
        "charger:\n"
        "  points:\n"
        "    door_open: {kind: status, ioa: 0x0002, type: M_SP_NA_1,"
        " report: {component: ChargingStation, variable: DoorOpen}}\n"
    )
    bench = Bench(table=compile_file(vendor, 1))
    bench.connect_csms()
    bench.link_up(*idle(1))
    assert bench.calls("NotifyEvent") == []  # closed at start: nothing to say
    bench.points(sp(0x0002, True), sp(0x0002, True), sp(0x0002, False))
    events = [p["eventData"][0] for p in bench.calls("NotifyEvent")]
    assert [(e["actualValue"], e["trigger"]) for e in events] == [
        ("true", "Delta"),
        ("false", "Delta"),
    ]
    assert events[0]["component"] == {"name": "ChargingStation"}
    assert events[0]["variable"] == {"name": "DoorOpen"}
    assert events[1]["eventId"] == events[0]["eventId"] + 1
    got = bench.csms(
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "ChargingStation"}, "variable": {"name": "DoorOpen"}}
            ]
        },
    )
    assert bench.answer_to(got).payload["getVariableResult"][0]["attributeValue"] == "false"  # type: ignore[union-attr]


def test_points_the_rules_read_that_never_arrive_are_named_once() -> None:
    """A point the table's rules read but the charger never sends (a wrong IOA or type in a vendor
    table) would keep its rules undecided for good: it is reported by name after `points_wait`."""
    bench = Bench()
    bench.connect_csms()
    everything_but_the_plug = [u for u in idle(1) + idle(2) if u.ioa != PLUG]
    bench.link_up(*everything_but_the_plug)
    bench.advance(59.0)
    assert "points-missing" not in bench.report_kinds()
    bench.advance(2.0)
    (report,) = [r for r in bench.reports if r.diagnostic.kind == "points-missing"]
    assert "plug_connected (0x0021)" in report.diagnostic.message
    assert "0x0041" not in report.diagnostic.message  # connector 2's plug did arrive
    bench.advance(600.0)
    assert bench.report_kinds().count("points-missing") == 1


def test_no_missing_points_report_when_every_point_arrived() -> None:
    bench = Bench()
    bench.ready()
    bench.advance(120.0)
    assert "points-missing" not in bench.report_kinds()
