"""Private ASDUs (bridge.stations.iec104.private, frames, frame_checks): layouts decoded from bytes spelled out
here, round trips of every field type, totality over any bytes, the compiled rules, and the
validation problems with their paths."""

from __future__ import annotations

import copy
import datetime
import functools
import math
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.mapping_files import load_reference
from bridge.stations.iec104 import TableError, asdu_format, compile_table, validate_table
from bridge.stations.iec104.asdu import AsduFormat
from bridge.stations.iec104.private import (
    Authorize,
    AuthorizeAnswer,
    FieldSpec,
    Layout,
    LayoutError,
    Settlement,
    SettlementAck,
    integer_range,
    object_bytes,
    split_object,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


@functools.cache
def compiled_example() -> Any:
    return load_reference("example-dialin-card").compile(2)


@pytest.fixture
def example() -> Any:
    return compiled_example()


# --- the shipped example -------------------------------------------------------------------------


def test_the_example_compiles_its_private_asdus(example: Any) -> None:
    assert sorted(example.private) == [
        "card_answer",
        "card_request",
        "settlement",
        "settlement_ack",
    ]
    assert sorted(example.private_in) == [
        (130, 0x7001),
        (130, 0x7002),
        (132, 0x7101),
        (132, 0x7102),
    ]
    request = example.private_in[130, 0x7002]
    assert (request.name, request.direction, request.cot) == ("card_request", "in", 3)
    assert request.connector_of(0x7002) == 2
    assert request.connector_of(0x7003) is None  # the station has 2 connectors
    assert request.ioa_for(1) == 0x7001
    assert request.meaning == Authorize("card", "Local", "card_answer", "refuse")
    answer = example.private["card_answer"]
    assert (answer.type_id, answer.direction, answer.cot, answer.ioa_for(2)) == (
        131,
        "out",
        7,
        0x7002,
    )
    assert example.private["settlement_ack"].meaning == SettlementAck("result")
    assert asdu_format(example) == AsduFormat(2, 2, 3)
    assert example.connector_addresses == {}
    assert example.station.common_address == 1


def test_card_request_decodes_the_bcd_card(example: Any) -> None:
    layout = example.private["card_request"].layout
    assert layout.size == 8
    assert layout.decode(bytes.fromhex("12 34 56 78 90 12 34 56"), SHANGHAI) == {
        "card": "1234567890123456"
    }
    assert layout.encode({"card": "1234567890123456"}, SHANGHAI) == bytes.fromhex(
        "12 34 56 78 90 12 34 56"
    )
    assert layout.decode(bytes.fromhex("12 34 56 78 90 12 3A 56"), SHANGHAI) == LayoutError(
        "card: BCD nibble A is not a digit", 6
    )
    assert layout.decode(bytes.fromhex("12 34"), SHANGHAI) == LayoutError(
        "2 bytes of data, the layout has 8", 2
    )


def test_a_whole_card_request_asdu_splits_into_ioa_and_data(example: Any) -> None:
    # after the data unit identifier: IOA 02 70 00 (0x7002), then the card
    objects = bytes.fromhex("02 70 00 12 34 56 78 90 12 34 56")
    split = split_object(objects, 3)
    assert not isinstance(split, LayoutError)
    ioa, data = split
    assert ioa == 0x7002
    assert example.private_in[130, ioa].layout.decode(data, SHANGHAI) == {
        "card": "1234567890123456"
    }
    assert split_object(b"\x01", 3) == LayoutError("1 bytes, shorter than an IOA (3)", 1)
    assert object_bytes(0x7002, b"\x00", 3) == bytes.fromhex("02 70 00 00")


def test_card_answer_codes(example: Any) -> None:
    answer = example.private["card_answer"]
    meaning = answer.meaning
    assert isinstance(meaning, AuthorizeAnswer)
    assert meaning.code_for("Accepted") == 0
    assert meaning.code_for("Unknown") == 1
    assert meaning.code_for("Blocked") == 2
    assert meaning.code_for("Expired") == 3
    assert meaning.code_for("Invalid") == 4
    assert meaning.code_for("NoCredit") == 4  # the default
    # result uint8, balance float32 0.0 (OCPP 2.0.1 has no balance)
    assert answer.layout.encode(
        meaning.values("Accepted", answer.layout), SHANGHAI
    ) == bytes.fromhex("00 00 00 00 00")
    assert answer.layout.encode(
        meaning.values("Blocked", answer.layout), SHANGHAI
    ) == bytes.fromhex("02 00 00 00 00")
    # a balance of 12.5 yuan as the charger's float32: 0x41480000
    assert answer.layout.decode(bytes.fromhex("00 00 00 48 41"), SHANGHAI) == {
        "result": 0,
        "balance": 12.5,
    }


def test_settlement_record(example: Any) -> None:
    rule = example.private["settlement"]
    record = bytes.fromhex(
        "12 34 56 78 90 12 34 56"  # card
        " 00 00 00 08 E1 03 1A"  # 2026-03-01 (a Sunday: 7 << 5 | 1) 08:00:00.000 Beijing time
        " 8C 3C 1E 09 E1 03 1A"  # 2026-03-01 09:30:15.500
        " 40 E2 01 00"  # meter start 123456 × 0.01 kWh
        " E0 F1 01 00"  # meter stop 127456
        " F6 09 00 00"  # amount 2550 × 0.01 yuan
        " 05"  # battery full
    )
    started = datetime.datetime(2026, 3, 1, 0, 0, tzinfo=datetime.UTC).timestamp()
    ended = datetime.datetime(2026, 3, 1, 1, 30, 15, 500000, tzinfo=datetime.UTC).timestamp()
    assert rule.layout.size == 35
    assert rule.layout.decode(record, SHANGHAI) == {
        "card": "1234567890123456",
        "started": started,
        "ended": ended,
        "meter_start": 123456,
        "meter_stop": 127456,
        "amount": 2550,
        "stop_reason": 5,
    }
    meaning = rule.meaning
    assert isinstance(meaning, Settlement)
    assert (meaning.meter_start.field, meaning.meter_start.wh_per_count) == ("meter_start", 10)
    assert meaning.amount is not None and meaning.amount.scale == 0.01
    assert meaning.stop_reason is not None
    reasons = [meaning.stop_reason.reason_of(code) for code in range(7)]
    assert reasons == [
        "Local",
        "Remote",
        "EmergencyStop",
        "Other",
        "EVDisconnected",
        "SOCLimitReached",
        "Other",
    ]
    assert (meaning.answer, dict(meaning.answer_values), meaning.wins) == (
        "settlement_ack",
        {"result": 0},
        "record",
    )
    ack = example.private["settlement_ack"]
    assert ack.layout.encode(dict(meaning.answer_values), SHANGHAI) == b"\x00"
    # an invalid CP56 tag (IV set) reads as no time
    invalid = record[:8] + bytes.fromhex("00 00 80 08 E1 03 1A") + record[15:]
    decoded = rule.layout.decode(invalid, SHANGHAI)
    assert isinstance(decoded, dict) and decoded["started"] is None


@given(st.binary(max_size=64))
def test_any_bytes_decode_to_values_or_an_error(data: bytes) -> None:
    for rule in compiled_example().private.values():
        result = rule.layout.decode(data, SHANGHAI)
        if isinstance(result, LayoutError):
            assert 0 <= result.offset <= len(data)
        else:
            assert set(result) == {spec.name for spec in rule.layout.fields}
    assert isinstance(split_object(data, 3), tuple)


# --- every field type round trips ----------------------------------------------------------------


def one(type_name: str, size: int | None = None, **extra: Any) -> Layout:
    """A layout of one field `v`, at offset 0."""
    fixed = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "float32": 4}
    size = size or {**fixed, "cp56": 7}[type_name]
    return Layout((FieldSpec("v", type_name, 0, size, **extra),), size)


@pytest.mark.parametrize("type_name", ["uint8", "uint16", "uint32", "int8", "int16", "int32"])
@pytest.mark.parametrize("endian", ["little", "big"])
@given(data=st.data())
def test_integers_round_trip(type_name: str, endian: str, data: st.DataObject) -> None:
    low, high = integer_range(type_name)
    value = data.draw(st.integers(low, high))
    layout = one(type_name, endian=endian)
    encoded = layout.encode({"v": value}, SHANGHAI)
    assert layout.decode(encoded, SHANGHAI) == {"v": value}
    with pytest.raises(ValueError, match="outside"):
        layout.encode({"v": high + 1}, SHANGHAI)


def test_integer_byte_order_spelled_out() -> None:
    assert one("uint16").encode({"v": 0x1234}, SHANGHAI) == bytes.fromhex("34 12")
    assert one("uint16", endian="big").encode({"v": 0x1234}, SHANGHAI) == bytes.fromhex("12 34")
    assert one("int32").decode(bytes.fromhex("FE FF FF FF"), SHANGHAI) == {"v": -2}
    assert one("uint32", endian="big").decode(bytes.fromhex("00 01 E2 40"), SHANGHAI) == {
        "v": 123456
    }


@given(st.integers(0, 0xFFFFFFFF))
def test_scaled_integers_round_trip(raw: int) -> None:
    layout = one("uint32", scale=0.01)
    decoded = layout.decode(raw.to_bytes(4, "little"), SHANGHAI)
    assert isinstance(decoded, dict)
    value = decoded["v"]
    assert isinstance(value, float) and math.isclose(value, raw * 0.01)
    assert layout.encode({"v": value}, SHANGHAI) == raw.to_bytes(4, "little")


@pytest.mark.parametrize("endian", ["little", "big"])
@given(value=st.floats(width=32, allow_nan=False))
def test_float32_round_trips(endian: str, value: float) -> None:
    layout = one("float32", endian=endian)
    assert layout.decode(layout.encode({"v": value}, SHANGHAI), SHANGHAI) == {"v": value}


def test_float32_spelled_out_and_too_large() -> None:
    assert one("float32").encode({"v": 12.5}, SHANGHAI) == bytes.fromhex("00 00 48 41")
    assert one("float32", endian="big").encode({"v": 12.5}, SHANGHAI) == bytes.fromhex(
        "41 48 00 00"
    )
    with pytest.raises(ValueError, match="does not fit float32"):
        one("float32").encode({"v": 1e39}, SHANGHAI)


@given(
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(st.just(n), st.text("0123456789", min_size=2 * n, max_size=2 * n))
    )
)
def test_bcd_round_trips(case: tuple[int, str]) -> None:
    size, digits = case
    layout = one("bcd", size)
    assert layout.decode(layout.encode({"v": digits}, SHANGHAI), SHANGHAI) == {"v": digits}


def test_bcd_padding_and_refusals() -> None:
    layout = one("bcd", 4)
    assert layout.encode({"v": "123"}, SHANGHAI) == bytes.fromhex("00 00 01 23")
    assert layout.decode(bytes.fromhex("12 34 5F FF"), SHANGHAI) == {"v": "12345"}  # F padding
    with pytest.raises(ValueError, match="9 digits do not fit 4 BCD bytes"):
        layout.encode({"v": "123456789"}, SHANGHAI)
    with pytest.raises(ValueError, match="BCD needs a string of digits"):
        layout.encode({"v": "12a4"}, SHANGHAI)


@given(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=6).map(
        lambda text: text + "x" if text else text
    )
)
def test_ascii_round_trips(text: str) -> None:
    layout = one("ascii", 8)
    assert layout.decode(layout.encode({"v": text}, SHANGHAI), SHANGHAI) == {"v": text}


def test_ascii_spelled_out() -> None:
    layout = one("ascii", 6)
    assert layout.encode({"v": "SN1"}, SHANGHAI) == b"SN1\x00\x00\x00"
    assert layout.decode(b"SN1 \x00\x00", SHANGHAI) == {"v": "SN1"}
    assert layout.decode(b"SN\xff\x00\x00\x00", SHANGHAI) == LayoutError(
        "v: byte 0xff is not ASCII", 2
    )
    with pytest.raises(ValueError, match="7 characters do not fit 6 bytes"):
        layout.encode({"v": "SN12345"}, SHANGHAI)


@pytest.mark.parametrize("zone", [SHANGHAI, BERLIN], ids=str)
@given(st.integers(946_771_200_000, 4_102_272_000_000))  # 2000-01-02..2099-12-30 UTC
def test_cp56_round_trips(zone: ZoneInfo, ms: int) -> None:
    epoch = ms / 1000
    layout = one("cp56")
    decoded = layout.decode(layout.encode({"v": epoch}, zone), zone)
    assert isinstance(decoded, dict)
    value = decoded["v"]
    assert isinstance(value, float) and math.isclose(value, epoch, abs_tol=1e-6)


def test_cp56_none_sends_an_invalid_tag() -> None:
    assert one("cp56").encode({"v": None}, SHANGHAI) == bytes.fromhex("00 00 80 00 00 00 00")
    assert one("cp56").decode(bytes.fromhex("00 00 80 00 00 00 00"), SHANGHAI) == {"v": None}


@given(st.binary(min_size=5, max_size=5))
def test_raw_round_trips(data: bytes) -> None:
    layout = one("raw", 5)
    assert layout.decode(layout.encode({"v": data}, SHANGHAI), SHANGHAI) == {"v": data}


def test_encode_refuses_missing_and_unknown_fields() -> None:
    layout = one("uint8")
    with pytest.raises(ValueError, match="no value for the field 'v'"):
        layout.encode({}, SHANGHAI)
    with pytest.raises(ValueError, match="no field named w"):
        layout.encode({"v": 1, "w": 2}, SHANGHAI)
    with pytest.raises(ValueError, match="needs an integer"):
        layout.encode({"v": 1.5}, SHANGHAI)


# --- validation ------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "identity": {"vendor_name": "ACME", "model": "PRIV-1"},
    "charger": {"points": {"estop": {"kind": "status", "ioa": 0x0001, "type": "M_SP_NA_1"}}},
    "connectors": {
        "max_count": 2,
        "blocks": {
            "status": {
                "base": 0x0021,
                "stride": 0x20,
                "points": {"plug": {"kind": "status", "at": 0, "type": "M_SP_NA_1"}},
            }
        },
    },
    "rules": {
        "connector_status": [{"status": "Occupied", "when": "plug"}, {"status": "Available"}]
    },
    "private_asdus": {
        "card_request": {
            "type": 130,
            "direction": "in",
            "cot": 3,
            "ioa": {"base": 0x7001, "stride": 1},
            "fields": [{"name": "card", "type": "bcd", "size": 8}],
            "meaning": {"kind": "authorize", "id_token": "card", "answer": "card_answer"},
        },
        "card_answer": {
            "type": 131,
            "direction": "out",
            "cot": 7,
            "ioa": {"base": 0x7001, "stride": 1},
            "fields": [{"name": "result", "type": "uint8"}, {"name": "balance", "type": "float32"}],
            "meaning": {
                "kind": "authorize_answer",
                "result": "result",
                "codes": {"Accepted": 0, "Invalid": 4},
                "default": 4,
                "balance": "balance",
            },
        },
        "settlement": {
            "type": 132,
            "direction": "in",
            "cot": 3,
            "ioa": {"base": 0x7101, "stride": 1},
            "fields": [
                {"name": "card", "type": "ascii", "size": 16},
                {"name": "started", "type": "cp56"},
                {"name": "ended", "type": "cp56"},
                {"name": "start", "type": "uint32"},
                {"name": "stop", "type": "uint32"},
                {"name": "reason", "type": "uint8"},
            ],
            "meaning": {
                "kind": "settlement",
                "id_token": "card",
                "started_at": "started",
                "ended_at": "ended",
                "meter_start": {"field": "start", "wh_per_count": 10},
                "meter_stop": {"field": "stop", "wh_per_count": 10},
                "stop_reason": {"field": "reason", "codes": {0: "Local"}, "default": "Other"},
                "answer": "ack",
                "answer_values": {"result": 0},
            },
        },
        "ack": {
            "type": 133,
            "direction": "out",
            "cot": 7,
            "ioa": {"base": 0x7101, "stride": 1},
            "fields": [{"name": "result", "type": "uint8"}],
            "meaning": {"kind": "settlement_ack", "result": "result"},
        },
        "tariff": {
            "type": 140,
            "direction": "out",
            "cot": 6,
            "ioa": 0x7200,
            "fields": [{"name": "price", "type": "uint32", "scale": 0.0001}],
            "meaning": {
                "kind": "tariff",
                "component": "TariffCtrlr",
                "variables": {"Price": "price"},
            },
        },
    },
}


def test_the_base_compiles() -> None:
    table = compile_table(validate_table(copy.deepcopy(BASE)), 2)
    tariff = table.private["tariff"]
    assert (tariff.per_connector, tariff.ioa_for(None), tariff.connector_of(0x7200)) == (
        False,
        0x7200,
        None,
    )
    assert tariff.layout.encode({"price": 1.2345}, SHANGHAI) == (12345).to_bytes(4, "little")
    assert sorted(table.private_in) == [(130, 0x7001), (130, 0x7002), (132, 0x7101), (132, 0x7102)]


def set_at(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


DELETE = object()
P = ("private_asdus",)

CASES = [
    (
        "answer names a missing ASDU",
        (*P, "card_request", "meaning", "answer"),
        "card_anwser",
        (*P, "card_request", "meaning", "answer"),
        "no private ASDU named 'card_anwser' (did you mean 'card_answer'?)",
    ),
    (
        "answer of the wrong kind",
        (*P, "card_request", "meaning", "answer"),
        "ack",
        (*P, "card_request", "meaning", "answer"),
        "'ack' is a settlement_ack ASDU (out); the answer is an out ASDU with meaning authorize_answer",
    ),
    (
        "id token in a number field",
        (*P, "card_request", "fields", 0),
        {"name": "card", "type": "uint32"},
        (*P, "card_request", "meaning", "id_token"),
        "'card' is a uint32 field; an id token needs ascii or bcd",
    ),
    (
        "a time that is no cp56",
        (*P, "settlement", "meaning", "ended_at"),
        "start",
        (*P, "settlement", "meaning", "ended_at"),
        "'start' is a uint32 field; a time needs cp56",
    ),
    (
        "meaning names a missing field",
        (*P, "settlement", "meaning", "meter_stop", "field"),
        "stopp",
        (*P, "settlement", "meaning", "meter_stop", "field"),
        "no field named 'stopp' (did you mean 'stop'?) in 'settlement'",
    ),
    (
        "wrong direction",
        (*P, "card_answer", "direction"),
        "in",
        (*P, "card_answer", "direction"),
        "a authorize_answer ASDU is sent by the bridge: direction out",
    ),
    (
        "authorization codes not total",
        (*P, "card_answer", "meaning", "default"),
        DELETE,
        (*P, "card_answer", "meaning", "codes"),
        "no code for Blocked, ConcurrentTx, Expired, NoCredit, NotAllowedTypeEVSE,"
        " NotAtThisLocation, NotAtThisTime, Unknown, which the CSMS may answer",
    ),
    (
        "a code that does not fit",
        (*P, "card_answer", "meaning", "codes", "Invalid"),
        256,
        (*P, "card_answer", "meaning", "codes", "Invalid"),
        "code 256 does not fit 'result' (uint8: 0..255)",
    ),
    (
        "stop reasons not total",
        (*P, "settlement", "meaning", "stop_reason", "default"),
        DELETE,
        (*P, "settlement", "meaning", "stop_reason", "codes"),
        "'reason' (uint8) carries 0..255: give every code a reason or add a `default` reason",
    ),
    (
        "answer values miss a field",
        (*P, "settlement", "meaning", "answer_values"),
        {"reslt": 0},
        (*P, "settlement", "meaning", "answer_values", "reslt"),
        "'ack' has no field 'reslt' (did you mean 'result'?)",
    ),
    (
        "overlapping fields",
        (*P, "card_answer", "fields", 1),
        {"name": "balance", "type": "float32", "offset": 0},
        (*P, "card_answer", "fields", 1, "offset"),
        "'balance' (bytes 0..3) overlaps 'result' (bytes 0..0)",
    ),
    (
        "unknown field type",
        (*P, "card_answer", "fields", 0, "type"),
        "unit8",
        (*P, "card_answer", "fields", 0, "type"),
        "unknown field type 'unit8' (did you mean 'uint8'?)",
    ),
    (
        "rest outside the registration",
        (*P, "card_request", "fields", 0, "size"),
        "rest",
        (*P, "card_request", "fields", 0, "size"),
        "size: rest is for the registration's payload only",
    ),
    (
        "an ASDU longer than an APDU",
        (*P, "card_request", "fields", 0, "size"),
        250,
        (*P, "card_request", "fields"),
        "the ASDU has 259 bytes (9 before the data, 250 of data); one APDU carries at most 249",
    ),
    (
        "a standard type the points use",
        (*P, "tariff", "type"),
        1,
        (*P, "tariff", "type"),
        "type 1 (M_SP_NA_1) is used by points of this table; private types are 128..255",
    ),
    (
        "unknown meaning",
        (*P, "tariff", "meaning", "kind"),
        "tarif",
        (*P, "tariff", "meaning", "kind"),
        "unknown kind 'tarif' (did you mean 'tariff'?)",
    ),
    (
        "a tariff field without a variable",
        (*P, "tariff", "fields"),
        [{"name": "price", "type": "uint32"}, {"name": "fee", "type": "uint32"}],
        (*P, "tariff", "meaning", "variables"),
        "no variable gives 'fee' a value",
    ),
    (
        "an IOA of a point",
        (*P, "tariff", "ioa"),
        0x0041,
        (*P, "tariff", "ioa"),
        "IOA 0x0041 of 'tariff' is connector 2's 'plug'",
    ),
    (
        "two ASDUs of one type and direction on one IOA",
        (*P, "tariff"),
        copy.deepcopy(BASE["private_asdus"]["card_answer"]),
        (*P, "tariff", "ioa", "base"),
        "IOA 0x7001 of 'tariff' (connector 1) is also 'card_answer' (connector 1)'s,"
        " of the same type 131 and direction",
    ),
    (
        "common address per connector: a gap",
        ("station",),
        {"common_addresses": {1: 1, 3: 3}},
        ("station", "common_addresses"),
        "no address for connector 2",
    ),
    (
        "common address per connector: twice",
        ("station",),
        {"common_addresses": {1: 5, 2: 5}},
        ("station", "common_addresses", 2),
        "connectors 1 and 2 both have common address 5",
    ),
]


@pytest.mark.parametrize(
    ("what", "where", "value", "path", "fragment"), CASES, ids=[c[0] for c in CASES]
)
def test_problems_name_their_path(
    what: str, where: tuple[str | int, ...], value: Any, path: tuple[str | int, ...], fragment: str
) -> None:
    data = copy.deepcopy(BASE)
    set_at(data, where, value)
    with pytest.raises(TableError) as caught:
        validate_table(data)
    found = [(p.path, p.message) for p in caught.value.problems]
    assert any(at == path and fragment in message for at, message in found), found


def test_ioas_must_fit_ioa_size() -> None:
    data = copy.deepcopy(BASE)
    data["link"] = {"ioa_size": 2}
    data["private_asdus"]["tariff"]["ioa"] = 0x10000
    with pytest.raises(TableError) as caught:
        validate_table(data)
    found = [(p.path, p.message) for p in caught.value.problems]
    # 0x10000 is a valid 3-byte IOA, but not with 2-byte IOAs
    assert (
        ("private_asdus", "tariff", "ioa"),
        "IOA 0x010000 of 'tariff' does not fit link.ioa_size 2 (up to 0xFFFF)",
    ) in found
    data = copy.deepcopy(BASE)
    data["link"] = {"ioa_size": 1}
    data["private_asdus"] = {}
    data["connectors"]["blocks"]["status"]["base"] = 0xF1
    with pytest.raises(TableError) as caught:
        validate_table(data)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        (
            ("connectors", "blocks", "status", "points", "plug", "at"),
            "IOA 0x0111 of connector 2's 'plug' is beyond 0x00FF (link.ioa_size: IOAs have 1 bytes)",
        )
    ]


def test_common_addresses_compile_and_fit_ca_size() -> None:
    data = copy.deepcopy(BASE)
    data["station"] = {"common_addresses": {1: 11, 2: 12}}
    table = compile_table(validate_table(data), 2)
    assert dict(table.connector_addresses) == {1: 11, 2: 12}
    assert table.connector_at(12) == 2 and table.connector_at(1) is None
    data["link"] = {"ca_size": 1, "cot_size": 1, "ioa_size": 2}
    data["station"] = {"common_address": 300, "common_addresses": {1: 255, 2: 12}}
    with pytest.raises(TableError) as caught:
        validate_table(data)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        (("station", "common_address"), "common address 300 does not fit link.ca_size 1 (1..254)"),
        (
            ("station", "common_addresses", 1),
            "common address 255 does not fit link.ca_size 1 (1..254)",
        ),
    ]
    data["station"] = {"common_addresses": {1: 11}}
    with pytest.raises(
        TableError, match="the station has 2 connectors; common addresses are given for 1"
    ):
        compile_table(validate_table(data), 2)
    one_connector = compile_table(validate_table(data), 1)
    assert asdu_format(one_connector) == AsduFormat(1, 1, 2)


def test_a_settlement_record_without_a_card_carries_no_id_token() -> None:
    """A remote-started session's record has an all-zero card field: no idToken, not '0000…'."""
    import zoneinfo

    from bridge.stations.iec104.southbound import RawAsdu
    from bridge.stations.iec104.vendor import Settle, VendorAsdus

    table = load_reference("example-dialin-card").compile(1)
    record = bytes(8) + bytes.fromhex("0000000a270c1a00001e0a270c1a") + bytes(13)
    vendor = VendorAsdus(table, zoneinfo.ZoneInfo("Asia/Shanghai"))
    raw = RawAsdu(132, 3, 1, 1, False, (0x7101).to_bytes(3, "little") + record)
    (action,) = vendor.received(raw, 0.0, {1: False})
    assert isinstance(action, Settle)
    assert action.record.id_token is None
