"""RpcEndpoint: call correlation, one outstanding CALL, timeouts, validation (OCPP-J part 4 §4)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import BridgeMisuse, Fault, OcppVersion, OutboundPayloadInvalid, QueueFull
from bridge.ocppj.rpc import (
    CallFailed,
    CallOverdue,
    CallReceived,
    Diagnostic,
    ErrorReceived,
    FailureReason,
    ResultReceived,
    RpcEndpoint,
    Unresponsive,
)

V16, V201 = OcppVersion.V16, OcppVersion.V201
HEARTBEAT_RESULT = {"currentTime": "2026-11-22T10:00:00Z"}
BOOT_201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}


def endpoint(
    schemas: OfficialSchemas, ids: Callable[[], str], version: OcppVersion = V201, **kw: object
) -> RpcEndpoint:
    return RpcEndpoint(version, schemas, ids, call_timeout=30.0, **kw)  # type: ignore[arg-type]


def frames(ep: RpcEndpoint) -> list[list[object]]:
    return [orjson.loads(f) for f in ep.take_outgoing()]


class TestOneOutstandingCall:
    def test_second_call_waits_for_the_first_answer(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        first = ep.call("Heartbeat", {}, 0.0)
        second = ep.call("Heartbeat", {}, 0.0)
        assert frames(ep) == [[2, "b1", "Heartbeat", {}]]
        assert ep.outstanding is first
        assert ep.queued == 1
        events = ep.receive(f'[3,"b1",{orjson.dumps(HEARTBEAT_RESULT).decode()}]', 1.0)
        assert events == [ResultReceived(first, HEARTBEAT_RESULT)]
        assert frames(ep) == [[2, "b2", "Heartbeat", {}]]
        assert ep.outstanding is second

    def test_calls_leave_in_fifo_order(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        sent = [ep.call("Heartbeat", {"customData": {"vendorId": str(i)}}, 0.0) for i in range(5)]
        order = []
        for request in sent:
            (frame,) = frames(ep)
            order.append(frame[3]["customData"]["vendorId"])
            ep.receive(orjson.dumps([3, request.message_id, HEARTBEAT_RESULT]), 0.0)
        assert order == ["0", "1", "2", "3", "4"]

    def test_queue_is_bounded(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids, max_queued=2)
        ep.call("Heartbeat", {}, 0.0)  # outstanding
        ep.call("Heartbeat", {}, 0.0)
        ep.call("Heartbeat", {}, 0.0)
        with pytest.raises(QueueFull):
            ep.call("Heartbeat", {}, 0.0)


class TestCorrelation:
    def test_unknown_answer_is_dropped_and_reported(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        request = ep.call("Heartbeat", {}, 0.0)
        ep.take_outgoing()
        (event,) = ep.receive('[3,"other",{"currentTime":"2026-01-01T00:00:00Z"}]', 1.0)
        assert isinstance(event, Diagnostic)
        assert event.kind == "unknown-response"
        assert ep.outstanding is request  # still waiting for its own answer
        assert ep.take_outgoing() == []  # nothing answered to an answer

    def test_late_answer_after_timeout_is_not_matched_to_the_next_call(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        first = ep.call("Heartbeat", {}, 0.0)
        second = ep.call("Heartbeat", {}, 0.0)
        (timeout,) = ep.handle_timer(30.0)
        assert timeout == CallFailed(first, FailureReason.TIMEOUT, "no answer within 30 s")
        assert ep.outstanding is second
        (late,) = ep.receive('[3,"b1",{"currentTime":"2026-01-01T00:00:00Z"}]', 31.0)
        assert isinstance(late, Diagnostic)
        assert late.kind == "late-response"
        assert ep.outstanding is second

    def test_timer_before_deadline_does_nothing(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        ep.call("Heartbeat", {}, 10.0)
        assert ep.next_deadline() == 40.0
        assert ep.handle_timer(39.9) == []
        assert ep.outstanding is not None

    def test_retry_gets_a_fresh_message_id(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        ep.call("Heartbeat", {}, 0.0)
        ep.handle_timer(30.0)
        ep.call("Heartbeat", {}, 30.0)  # the owner retries the same payload
        sent = [f[1] for f in frames(ep)]
        assert sent == ["b1", "b2"]

    def test_callerror_answer_is_delivered_with_its_fault(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        request = ep.call("Heartbeat", {}, 0.0)
        (event,) = ep.receive('[4,"b1","NotSupported","no",{}]', 1.0)
        assert isinstance(event, ErrorReceived)
        assert event.request is request
        assert event.fault is Fault.NOT_SUPPORTED

    def test_invalid_result_fails_the_call(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        request = ep.call("Heartbeat", {}, 0.0)
        (event,) = ep.receive('[3,"b1",{"currentTime":"yesterday"}]', 1.0)
        assert isinstance(event, CallFailed)
        assert event.request is request
        assert event.reason is FailureReason.INVALID_RESPONSE
        assert "currentTime" in event.detail


class TestIncomingCalls:
    def test_valid_call_is_delivered_and_answered_once(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        (event,) = ep.receive('[2,"c1","Heartbeat",{}]', 0.0)
        assert isinstance(event, CallReceived)
        assert ep.is_awaiting("c1")
        ep.reply("c1", HEARTBEAT_RESULT)
        assert frames(ep) == [[3, "c1", HEARTBEAT_RESULT]]
        with pytest.raises(BridgeMisuse):
            ep.reply("c1", HEARTBEAT_RESULT)

    def test_reply_is_validated(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        ep.receive('[2,"c1","Heartbeat",{}]', 0.0)
        with pytest.raises(OutboundPayloadInvalid):
            ep.reply("c1", {"currentTime": 5})

    def test_outbound_call_is_validated(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        with pytest.raises(OutboundPayloadInvalid):
            ep.call("BootNotification", {"reason": "PowerUp"}, 0.0)
        assert ep.take_outgoing() == []

    def test_duplicate_message_id_while_handling_is_refused(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        ep.receive('[2,"c1","Heartbeat",{}]', 0.0)
        (event,) = ep.receive('[2,"c1","Heartbeat",{}]', 0.0)
        assert isinstance(event, Diagnostic)
        assert frames(ep) == [[4, "c1", "RpcFrameworkError", event.message, {}]]
        assert ep.is_awaiting("c1")  # the first one is still ours to answer

    def test_connection_stays_usable_after_bad_input(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        for bad in ["{", '[2,"a","Nope",{}]', '[2,"b","Heartbeat",{"x":1}]', '[8,"c"]']:
            ep.receive(bad, 0.0)
        assert len(ep.take_outgoing()) == 4
        (event,) = ep.receive('[2,"d","Heartbeat",{}]', 0.0)
        assert isinstance(event, CallReceived)


# Schema faults per version: (version, action, payload, expected errorCode)
INVALID_CALLS = [
    (V201, "Heartbeat", {"unexpected": 1}, "ProtocolError"),
    (V16, "Heartbeat", {"unexpected": 1}, "FormationViolation"),
    (V201, "BootNotification", {"reason": "PowerUp"}, "OccurrenceConstraintViolation"),
    (V16, "BootNotification", {"chargePointVendor": "V"}, "ProtocolError"),
    (V201, "BootNotification", {**BOOT_201, "reason": "Bored"}, "PropertyConstraintViolation"),
    (V201, "BootNotification", {**BOOT_201, "reason": 3}, "TypeConstraintViolation"),
    (
        V16,
        "Authorize",
        {"idTag": "X" * 21},
        "TypeConstraintViolation",
    ),
    (
        V16,
        "StartTransaction",
        {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "2026-01-01 10:00"},
        "TypeConstraintViolation",
    ),
    (
        V201,
        "MeterValues",
        {"evseId": 1, "meterValue": []},
        "OccurrenceConstraintViolation",
    ),
    (V16, "UnknownAction", {}, "NotImplemented"),
    (V201, "StartTransaction", {}, "NotImplemented"),  # a 1.6 action is unknown in 2.0.1
]


@pytest.mark.parametrize(("version", "action", "payload", "code"), INVALID_CALLS)
def test_invalid_call_gets_the_versions_callerror(
    schemas, ids, version: OcppVersion, action: str, payload: dict[str, object], code: str
) -> None:
    ep = endpoint(schemas, ids, version)
    (event,) = ep.receive(orjson.dumps([2, "m1", action, payload]), 0.0)
    assert isinstance(event, Diagnostic)
    assert event.kind == "invalid-call"
    (answer,) = frames(ep)
    assert answer[:3] == [4, "m1", code]
    assert not ep.is_awaiting("m1")


@pytest.mark.parametrize("payload", ["null", '"boot"'])
def test_issue_16_a_null_or_string_payload_for_a_payload_needing_action_is_format_violation(
    schemas, ids, payload: str
) -> None:
    ep = endpoint(schemas, ids, V201)
    ep.receive(f'[2, "m1", "BootNotification", {payload}]', 0.0)
    assert frames(ep)[0][:3] == [4, "m1", "FormatViolation"]


def test_a_null_payload_is_no_payload_where_none_is_needed(schemas, ids) -> None:
    ep = endpoint(schemas, ids, V201)
    (event,) = ep.receive('[2, "m1", "Heartbeat", null]', 0.0)
    assert isinstance(event, CallReceived) and event.call.payload == {}


class TestLateAnswers:
    """Issue 16 item 1: an answer after the call timeout on a live link is the call's answer."""

    def test_overdue_then_late_answer_matched_then_unresponsive_later(self, schemas, ids) -> None:
        ep = RpcEndpoint(V201, schemas, ids, call_timeout=30.0, late_answer_wait=90.0)
        first = ep.call("Heartbeat", {}, 0.0)
        ep.call("Heartbeat", {}, 0.0)
        frames(ep)
        (overdue,) = ep.handle_timer(30.0)
        assert isinstance(overdue, CallOverdue) and overdue.request is first
        assert frames(ep) == [] and ep.outstanding is first and ep.next_deadline() == 120.0
        events = ep.receive(orjson.dumps([3, first.message_id, HEARTBEAT_RESULT]), 60.0)
        assert [type(e) for e in events] == [Diagnostic, ResultReceived]
        assert events[0].kind == "late-answer"
        (second,) = frames(ep)  # the next call goes only now
        assert second[2] == "Heartbeat"
        ep.handle_timer(90.0)
        events = ep.handle_timer(180.0)
        assert [type(e) for e in events] == [Unresponsive, CallFailed]
        assert events[1].reason is FailureReason.CONNECTION_LOST and not ep.online


class TestOffline:
    def test_going_offline_fails_outstanding_then_queued_in_order(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids)
        first = ep.call("Heartbeat", {}, 0.0)
        second = ep.call("Heartbeat", {}, 0.0)
        ep.receive('[2,"c1","Heartbeat",{}]', 0.0)
        events = ep.go_offline()
        assert [e.request for e in events if isinstance(e, CallFailed)] == [first, second]
        assert all(
            e.reason is FailureReason.CONNECTION_LOST for e in events if isinstance(e, CallFailed)
        )
        assert not ep.is_awaiting("c1")
        assert ep.take_outgoing() == []

    def test_calls_made_offline_wait_for_online(self, schemas, ids) -> None:
        ep = endpoint(schemas, ids, online=False)
        ep.call("Heartbeat", {}, 0.0)
        assert ep.take_outgoing() == []
        assert ep.next_deadline() is None
        ep.go_online(5.0)
        assert frames(ep) == [[2, "b1", "Heartbeat", {}]]
        assert ep.next_deadline() == 35.0

    def test_bad_id_source_is_our_bug(self, schemas) -> None:
        ep = RpcEndpoint(V201, schemas, lambda: "x" * 37, call_timeout=1.0)
        with pytest.raises(BridgeMisuse):
            ep.call("Heartbeat", {}, 0.0)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=15,
)
_ACTIONS = [
    "Heartbeat",
    "BootNotification",
    "TransactionEvent",
    "StartTransaction",
    "Authorize",
    "X",
]


@given(
    frames=st.lists(
        st.one_of(
            st.text(max_size=80),
            st.builds(
                lambda kind, mid, action, payload: orjson.dumps([kind, mid, action, payload]),
                st.sampled_from([2, 3, 4, 5]),
                st.text(max_size=40),
                st.sampled_from(_ACTIONS),
                _json,
            ),
        ),
        max_size=12,
    ),
    version=st.sampled_from([V16, V201]),
)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_input_to_an_endpoint_never_raises(
    schemas: OfficialSchemas, frames: list[str | bytes], version: OcppVersion
) -> None:
    counter = iter(range(10**6))
    ep = RpcEndpoint(version, schemas, lambda: f"b{next(counter)}", call_timeout=30.0)
    ep.call("Heartbeat", {}, 0.0)
    for frame in frames:
        for event in ep.receive(frame, 1.0):
            if isinstance(event, CallReceived):
                ep.reply_error(event.call.message_id, Fault.NOT_SUPPORTED, "test")
    for text in ep.take_outgoing():
        parsed = orjson.loads(text)
        assert parsed[0] in (2, 3, 4)
        assert len(parsed[1]) <= 36
