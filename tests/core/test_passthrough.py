"""PassThroughStation: a 2.0.1 charger relayed as itself (OCPP 2.0.1 part 4 §6, Local Controller)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from adapters.schemas import OfficialSchemas
from bridge.effects import Close, Report, Send, Side
from bridge.stations.passthrough.core import PassThroughStation

SOUTH, NORTH = Side.SOUTH, Side.NORTH
BOOT = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
BOOT_RESULT = {"currentTime": "2026-11-22T10:00:00Z", "interval": 300, "status": "Accepted"}


WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the wall time passed with each input (unused here)


@pytest.fixture
def station(schemas: OfficialSchemas, ids: Callable[[], str]) -> PassThroughStation:
    return PassThroughStation(
        "CS1", schemas, ids, csms_call_timeout=30.0, charger_call_timeout=20.0, max_queued=3
    )


def sent(station: PassThroughStation) -> list[tuple[Side, list[object]]]:
    return [(e.side, orjson.loads(e.frame)) for e in station.effects() if isinstance(e, Send)]


def feed(station: PassThroughStation, side: Side, frame: list[object], now: float = 0.0) -> None:
    station.receive(side, orjson.dumps(frame), now, WALL + now)


class TestB01BootThroughTheBridge:
    def test_charger_call_goes_north_with_a_bridge_id_and_the_answer_comes_back(
        self, station
    ) -> None:
        feed(station, SOUTH, [2, "cs-1", "BootNotification", BOOT])
        assert sent(station) == [(NORTH, [2, "b1", "BootNotification", BOOT])]
        feed(station, NORTH, [3, "b1", BOOT_RESULT])
        assert sent(station) == [(SOUTH, [3, "cs-1", BOOT_RESULT])]


class TestB06GetVariablesFromTheCsms:
    def test_csms_call_goes_south_and_the_answer_north(self, station) -> None:
        request = {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        }
        feed(station, NORTH, [2, "csms-7", "GetVariables", request])
        assert sent(station) == [(SOUTH, [2, "b1", "GetVariables", request])]
        answer = {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        }
        feed(station, SOUTH, [3, "b1", answer])
        assert sent(station) == [(NORTH, [3, "csms-7", answer])]


class TestLateAnswersFromALiveCsms:
    """Issue 16 item 1: the bridge answered the charger InternalError at the CSMS's call timeout; the
    charger resent its CALL and the CSMS processed both."""

    @pytest.fixture
    def station(self, schemas: OfficialSchemas, ids: Callable[[], str]) -> PassThroughStation:
        return PassThroughStation(
            "CS1",
            schemas,
            ids,
            csms_call_timeout=30.0,
            charger_call_timeout=20.0,
            late_answer_wait=90.0,
        )

    def test_e02_a_late_answer_is_forwarded_and_the_charger_is_never_answered_for_the_csms(
        self, station
    ) -> None:
        event = {
            "eventType": "Updated",
            "timestamp": "2026-11-22T10:00:00Z",
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 5,
            "transactionInfo": {"transactionId": "T1"},
        }
        feed(station, SOUTH, [2, "cs-1", "TransactionEvent", event])
        assert sent(station) == [(NORTH, [2, "b1", "TransactionEvent", event])]
        station.handle_timer(30.0, WALL)
        station.handle_timer(60.0, WALL)
        assert sent(station) == []  # no InternalError for the charger, nothing sent again
        feed(station, NORTH, [3, "b1", {}], now=60.054)
        assert sent(station) == [(SOUTH, [3, "cs-1", {}])]

    def test_a_csms_that_never_answers_has_both_connections_closed(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "Heartbeat", {}])
        station.effects()
        station.handle_timer(30.0, WALL)
        assert station.next_deadline() == 120.0
        station.handle_timer(120.0, WALL)
        effects = station.effects()
        assert [(e.side, e.code) for e in effects if isinstance(e, Close)] == [
            (NORTH, 1001),
            (SOUTH, 1013),
        ]
        assert not [e for e in effects if isinstance(e, Send)]  # not answered for the CSMS
        kinds = [e.diagnostic.kind for e in effects if isinstance(e, Report)]
        assert "peer-unresponsive" in kinds
        station.connection_lost(NORTH, 121.0, WALL)  # the adapter reports the ends: nothing more
        station.connection_lost(SOUTH, 121.0, WALL)
        assert station.effects() == []


class TestLateAnswersFromALiveCharger:
    """Issue 16 item 1, CSMS → charger: the bridge answered the CSMS InternalError at the charger's call
    timeout while the charger's answer was still coming."""

    @pytest.fixture
    def station(self, schemas: OfficialSchemas, ids: Callable[[], str]) -> PassThroughStation:
        return PassThroughStation(
            "CS1",
            schemas,
            ids,
            csms_call_timeout=30.0,
            charger_call_timeout=20.0,
            late_answer_wait=90.0,
            max_queued=2,
        )

    def test_b06_a_late_charger_answer_is_forwarded_and_the_csms_never_answered_for_it(
        self, station
    ) -> None:
        feed(station, NORTH, [2, "csms-1", "ClearCache", {}])
        assert sent(station) == [(SOUTH, [2, "b1", "ClearCache", {}])]
        station.handle_timer(20.0, WALL)
        station.handle_timer(60.0, WALL)
        assert sent(station) == []  # no InternalError for the CSMS, nothing sent again
        feed(station, SOUTH, [3, "b1", {"status": "Accepted"}], now=60.05)
        effects = station.effects()
        frames = [(e.side, orjson.loads(e.frame)) for e in effects if isinstance(e, Send)]
        assert frames == [(NORTH, [3, "csms-1", {"status": "Accepted"}])]
        kinds = [(e.side, e.diagnostic.kind) for e in effects if isinstance(e, Report)]
        assert (SOUTH, "late-answer") in kinds  # what /metrics counts as late_answers_total{south}

    def test_calls_behind_a_late_one_wait_in_order(self, station) -> None:
        feed(station, NORTH, [2, "csms-1", "ClearCache", {}])
        feed(station, NORTH, [2, "csms-2", "ClearCache", {}])
        assert sent(station) == [(SOUTH, [2, "b1", "ClearCache", {}])]
        station.handle_timer(25.0, WALL)
        assert sent(station) == []
        feed(station, SOUTH, [3, "b1", {"status": "Accepted"}], now=26.0)
        frames = sent(station)  # one frame per side; their order across sides means nothing
        assert sorted(frames, key=lambda f: f[0].value) == [
            (NORTH, [3, "csms-1", {"status": "Accepted"}]),
            (SOUTH, [2, "b2", "ClearCache", {}]),
        ]

    def test_a_charger_that_never_answers_gets_the_csms_internal_error_and_keeps_its_link(
        self, station
    ) -> None:
        feed(station, NORTH, [2, "csms-1", "ClearCache", {}])
        feed(station, NORTH, [2, "csms-2", "ClearCache", {}])
        station.effects()
        station.handle_timer(20.0, WALL)
        assert station.next_deadline() == 110.0  # charger_call_timeout + late_answer_wait
        station.handle_timer(110.0, WALL)
        effects = station.effects()
        assert not [e for e in effects if isinstance(e, Close)]
        frames = {e.side: orjson.loads(e.frame) for e in effects if isinstance(e, Send)}
        assert frames[NORTH][:3] == [4, "csms-1", "InternalError"]
        assert "110 s" in frames[NORTH][3]
        assert frames[SOUTH] == [2, "b2", "ClearCache", {}]  # the next call goes
        feed(station, SOUTH, [3, "b1", {"status": "Accepted"}], now=111.0)  # too late: dropped
        effects = station.effects()
        assert not [e for e in effects if isinstance(e, Send)]
        assert [e.diagnostic.kind for e in effects if isinstance(e, Report)] == ["late-response"]


class TestOffsetLessTimesFromTheCsms:
    """Issue 16 item 10: a CSMS sending date-times without an offset stranded every station."""

    @pytest.fixture
    def station(self, schemas: OfficialSchemas, ids: Callable[[], str]) -> PassThroughStation:
        return PassThroughStation(
            "CS1",
            schemas,
            ids,
            csms_call_timeout=30.0,
            charger_call_timeout=20.0,
            naive_times_as_utc=True,
        )

    def test_b01_read_as_utc_and_forwarded_with_z_warned_once(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "BootNotification", BOOT])
        station.effects()
        naive = {**BOOT_RESULT, "currentTime": "2026-12-07T10:00:00.123"}
        feed(station, NORTH, [3, "b1", naive])
        effects = station.effects()
        frames = [(e.side, orjson.loads(e.frame)) for e in effects if isinstance(e, Send)]
        assert frames == [
            (SOUTH, [3, "cs-1", {**naive, "currentTime": "2026-12-07T10:00:00.123Z"}])
        ]
        reserve = {
            "id": 1,
            "expiryDateTime": "2026-12-07T11:00:00",
            "idToken": {"idToken": "A", "type": "ISO14443"},
        }
        feed(station, NORTH, [2, "c1", "ReserveNow", reserve])
        effects += station.effects()
        frames = [(e.side, orjson.loads(e.frame)) for e in effects if isinstance(e, Send)]
        assert frames[-1] == (
            SOUTH,
            [2, "b2", "ReserveNow", {**reserve, "expiryDateTime": "2026-12-07T11:00:00Z"}],
        )
        kinds = [e.diagnostic.kind for e in effects if isinstance(e, Report)]
        assert kinds.count("timestamp-without-offset") == 1

    def test_strict_timestamps_answer_the_charger_internal_error(self, schemas, ids) -> None:
        station = PassThroughStation(
            "CS1", schemas, ids, csms_call_timeout=30.0, charger_call_timeout=20.0
        )
        feed(station, SOUTH, [2, "cs-1", "BootNotification", BOOT])
        station.effects()
        feed(station, NORTH, [3, "b1", {**BOOT_RESULT, "currentTime": "2026-12-07T10:00:00"}])
        assert sent(station)[0][1][:3] == [4, "cs-1", "InternalError"]


class TestErrorsTravelTruthfully:
    def test_callerror_from_the_csms_is_forwarded(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "Heartbeat", {}])
        station.effects()
        feed(station, NORTH, [4, "b1", "InternalError", "db down", {"k": 1}])
        assert sent(station) == [(SOUTH, [4, "cs-1", "InternalError", "db down", {"k": 1}])]

    def test_unknown_error_code_is_respelled_for_2_0_1(self, station) -> None:
        feed(station, NORTH, [2, "c", "ClearCache", {}])
        station.effects()
        feed(station, SOUTH, [4, "b1", "FormationViolation", "1.6 habits", {}])
        assert sent(station) == [(NORTH, [4, "c", "FormatViolation", "1.6 habits", {}])]

    def test_csms_timeout_without_late_answer_wait_becomes_internal_error(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "Heartbeat", {}], now=0.0)
        station.effects()
        assert station.next_deadline() == 30.0
        station.handle_timer(30.0, WALL)
        effects = station.effects()
        frames = [orjson.loads(e.frame) for e in effects if isinstance(e, Send)]
        assert frames[0][:3] == [4, "cs-1", "InternalError"]
        assert "timeout" in frames[0][3]
        assert any(isinstance(e, Report) and e.diagnostic.kind == "forward-failed" for e in effects)

    def test_invalid_csms_answer_is_not_forwarded(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "BootNotification", BOOT])
        station.effects()
        feed(station, NORTH, [3, "b1", {"status": "Maybe"}])
        ((side, frame),) = sent(station)
        assert side is SOUTH
        assert frame[:3] == [4, "cs-1", "InternalError"]

    def test_invalid_charger_call_is_answered_and_not_forwarded(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "BootNotification", {"reason": "PowerUp"}])
        assert sent(station) == [
            (
                SOUTH,
                [
                    4,
                    "cs-1",
                    "OccurrenceConstraintViolation",
                    '"chargingStation" is a required property',
                    {"keyword": "required", "path": ""},
                ],
            )
        ]

    def test_invalid_csms_call_is_answered_and_not_forwarded(self, station) -> None:
        feed(station, NORTH, [2, "x", "Reset", {"type": "Hard"}])
        ((side, frame),) = sent(station)
        assert side is NORTH
        assert frame[:3] == [4, "x", "PropertyConstraintViolation"]

    def test_pipelining_beyond_the_queue_is_refused(self, station) -> None:
        for n in range(5):
            feed(station, SOUTH, [2, f"cs-{n}", "Heartbeat", {}])
        frames = sent(station)
        assert [f for s, f in frames if s is NORTH] == [[2, "b1", "Heartbeat", {}]]
        refused = [f for s, f in frames if s is SOUTH]
        # three calls wait for the CSMS (one outstanding, two queued); the rest are refused at once
        assert [f[1] for f in refused] == ["cs-3", "cs-4"]
        assert {f[2] for f in refused} == {"GenericError"}
        assert station.pending_calls == 3


class TestConnectionsFollowEachOther:
    def test_charger_gone_closes_the_csms_connection(self, station) -> None:
        feed(station, NORTH, [2, "c", "ClearCache", {}])
        station.effects()
        station.connection_lost(SOUTH, 1.0, WALL)
        effects = station.effects()
        assert Close(NORTH, 1001, "charging station disconnected") in effects
        assert not [e for e in effects if isinstance(e, Send)]

    def test_csms_gone_closes_the_charger_connection(self, station) -> None:
        station.connection_lost(NORTH, 1.0, WALL)
        assert station.effects() == [Close(SOUTH, 1013, "CSMS connection lost")]

    def test_answer_after_the_asker_left_is_dropped(self, station) -> None:
        feed(station, SOUTH, [2, "cs-1", "Heartbeat", {}])
        station.effects()
        station.connection_lost(SOUTH, 1.0, WALL)
        station.effects()
        feed(station, NORTH, [3, "b1", {"currentTime": "2026-01-01T00:00:00Z"}])
        assert [e for e in station.effects() if isinstance(e, Send)] == []

    def test_second_loss_report_is_harmless(self, station) -> None:
        station.connection_lost(SOUTH, 1.0, WALL)
        station.effects()
        station.connection_lost(NORTH, 1.0, WALL)
        station.connection_lost(SOUTH, 1.0, WALL)
        assert station.effects() == []
