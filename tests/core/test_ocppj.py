"""OCPP-J framing (OCPP-J 1.6 §4, OCPP 2.0.1 part 4 §4): parse_frame is total and answers per version."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ocppj.errors import Fault, OcppVersion
from bridge.ocppj.frames import (
    Call,
    CallError,
    CallResult,
    FrameError,
    make_error,
    parse_frame,
)

V16, V201 = OcppVersion.V16, OcppVersion.V201


def test_call_round_trip() -> None:
    call = Call("abc", "Heartbeat", {})
    assert call.serialize() == '[2,"abc","Heartbeat",{}]'
    assert parse_frame(call.serialize(), V201) == call


def test_result_and_error_round_trip() -> None:
    result = CallResult("1", {"currentTime": "2026-01-01T00:00:00Z"})
    assert parse_frame(result.serialize(), V16) == result
    error = CallError("2", "NotSupported", "nope", {"a": 1})
    assert parse_frame(error.serialize(), V201) == error


def test_bytes_frames_are_read() -> None:
    assert parse_frame(b'[2,"x","Heartbeat",{}]', V201) == Call("x", "Heartbeat", {})


def test_null_payload_reads_as_empty_object() -> None:
    assert parse_frame('[2,"x","Heartbeat",null]', V201) == Call("x", "Heartbeat", {}, True)
    assert parse_frame('[3,"x",null]', V201) == CallResult("x", {})


def test_callerror_without_details_is_accepted() -> None:
    assert parse_frame('[4,"x","GenericError","d"]', V201) == CallError(
        "x", "GenericError", "d", {}
    )


def test_description_is_cut_to_255_characters() -> None:
    frame = orjson.loads(CallError("x", "GenericError", "d" * 400, {}).serialize())
    assert len(frame[3]) == 255


# (frame, version, expected message id of the answer, expected code)
BROKEN_CALLS = [
    ("not json", V201, "-1", "RpcFrameworkError"),
    ("not json", V16, "-1", "FormationViolation"),
    ('[2, "salv-1", "Boot', V201, "salv-1", "FormatViolation"),
    ("[NaN]", V201, "-1", "RpcFrameworkError"),
    ("{}", V201, "-1", "RpcFrameworkError"),
    ("[]", V16, "-1", "FormationViolation"),
    ('["2","x","Heartbeat",{}]', V201, "x", "RpcFrameworkError"),
    ('[true,"x","Heartbeat",{}]', V201, "x", "RpcFrameworkError"),
    ("[2]", V201, "-1", "RpcFrameworkError"),
    ('[2, 17, "Heartbeat", {}]', V201, "-1", "RpcFrameworkError"),
    ('[2, "' + "i" * 37 + '", "Heartbeat", {}]', V201, "-1", "RpcFrameworkError"),
    ('[2, "", "Heartbeat", {}]', V201, "-1", "RpcFrameworkError"),
    ('[2, "x", "Heartbeat"]', V201, "x", "RpcFrameworkError"),
    ('[2, "x", "Heartbeat", {}, 5]', V16, "x", "FormationViolation"),
    ('[2, "x", 12, {}]', V201, "x", "RpcFrameworkError"),
    ('[2, "x", "Heartbeat", []]', V201, "x", "FormatViolation"),
    ('[2, "x", "Heartbeat", "s"]', V16, "x", "FormationViolation"),
    ('[5, "x", {}]', V201, "x", "MessageTypeNotSupported"),
    ('[6, "x", "y"]', V16, "x", "FormationViolation"),
    ("[9]", V201, "-1", "MessageTypeNotSupported"),
]


@pytest.mark.parametrize(("text", "version", "message_id", "code"), BROKEN_CALLS)
def test_broken_frame_is_answered_with_the_versions_code(
    text: str, version: OcppVersion, message_id: str, code: str
) -> None:
    parsed = parse_frame(text, version)
    assert isinstance(parsed, FrameError)
    assert parsed.reply is not None
    assert parsed.reply.message_id == message_id
    assert parsed.reply.code == code
    # The answer itself is a well-formed CALLERROR (never invalid JSON, part 4 §4.2.3).
    assert parse_frame(parsed.reply.serialize(), version) == parsed.reply


@pytest.mark.parametrize(
    "text",
    [
        '[3, "x"]',
        '[3, "x", {}, 1]',
        '[3, "x", [1]]',
        "[3, 5, {}]",
        '[4, "x", "GenericError"]',
        '[4, "x", 1, "d", {}]',
        '[4, "x", "GenericError", "d", []]',
    ],
)
def test_broken_answers_get_no_answer(text: str) -> None:
    parsed = parse_frame(text, V201)
    assert isinstance(parsed, FrameError)
    assert parsed.reply is None


def test_invalid_utf8_bytes_are_a_format_violation() -> None:
    parsed = parse_frame(b'[2,"x","Heartbeat",{"a":"\xff"}]', V201)
    assert isinstance(parsed, FrameError)
    assert parsed.reply is not None
    assert parsed.reply.code == "FormatViolation"


def test_make_error_spells_per_version() -> None:
    assert make_error(V16, "1", Fault.OCCURRENCE, "x").code == "OccurenceConstraintViolation"
    assert make_error(V201, "1", Fault.OCCURRENCE, "x").code == "OccurrenceConstraintViolation"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_any_input_gives_a_frame_or_a_protocol_error(data: str | bytes) -> None:
    for version in (V16, V201):
        parsed = parse_frame(data, version)
        assert isinstance(parsed, Call | CallResult | CallError | FrameError)
        if isinstance(parsed, FrameError) and parsed.reply is not None:
            assert len(parsed.reply.message_id) <= 36


@given(st.lists(json_values, max_size=6))
def test_any_json_array_gives_a_frame_or_a_protocol_error(message: list[object]) -> None:
    data = orjson.dumps(message)
    parsed = parse_frame(data, V201)
    assert isinstance(parsed, Call | CallResult | CallError | FrameError)
    if isinstance(parsed, Call | CallResult | CallError):
        # Whatever parsed, serializes back to an equivalent frame.
        assert parse_frame(parsed.serialize(), V201) == parsed


@given(
    st.text(min_size=1, max_size=36),
    st.text(min_size=1, max_size=30),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
def test_valid_calls_round_trip(message_id: str, action: str, payload: dict[str, object]) -> None:
    call = Call(message_id, action, payload)
    assert parse_frame(call.serialize(), V16) == call
