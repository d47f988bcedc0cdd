"""Registration frames (bridge.stations.iec104.registration): the layout language compiled, parsed from bytes
spelled out here, every checksum rule, and totality over any bytes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.stations.iec104 import TableError, compile_table, validate_table
from bridge.stations.iec104.registration import (
    NeedMore,
    Registered,
    RegistrationError,
    RegistrationSpec,
    checksum,
)

BASE: dict[str, Any] = {
    "identity": {"vendor_name": "ACME", "model": "REG-1"},
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
}

# The shipped example's registration: AA 55, n, n ASCII bytes, sum8 of the serial.
EXAMPLE = {
    "start": "AA 55",
    "length": {"size": 1, "counts": "payload"},
    "fields": [{"name": "serial", "type": "ascii", "size": "rest"}],
    "checksum": {"rule": "sum8", "over": "payload"},
    "id": "serial",
    "accepted": "AA 55 01 00",
    "refused": "AA 55 01 01",
}
# "SN20260001": 53 4E 32 30 32 36 30 30 30 31, sum 556 = 0x22C → 0x2C
FRAME = bytes.fromhex("AA 55 0A 53 4E 32 30 32 36 30 30 30 31 2C")


def spec(registration: dict[str, Any]) -> RegistrationSpec:
    data = copy.deepcopy(BASE)
    data["registration"] = registration
    compiled = compile_table(validate_table(data), 1)
    assert compiled.registration is not None
    return compiled.registration


def problems(registration: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    data = copy.deepcopy(BASE)
    data["registration"] = registration
    with pytest.raises(TableError) as caught:
        validate_table(data)
    return [(p.path, p.message) for p in caught.value.problems]


def test_the_example_frame_registers_its_serial() -> None:
    registration = spec(EXAMPLE)
    assert registration.start == b"\xaa\x55"
    assert registration.accepted == bytes.fromhex("AA 55 01 00")
    assert registration.refused == bytes.fromhex("AA 55 01 01")
    assert registration.max_size == 2 + 1 + 255 + 1
    assert registration.parse(FRAME) == Registered("SN20260001", 14, {"serial": "SN20260001"})


def test_bytes_after_the_frame_are_not_consumed() -> None:
    startdt = bytes.fromhex("68 04 07 00 00 00")
    assert spec(EXAMPLE).parse(FRAME + startdt) == Registered(
        "SN20260001", 14, {"serial": "SN20260001"}
    )


def test_every_proper_prefix_needs_more() -> None:
    registration = spec(EXAMPLE)
    for size in range(len(FRAME)):
        assert isinstance(registration.parse(FRAME[:size]), NeedMore), size
    assert registration.parse(FRAME[:5]) == NeedMore(14)


def test_wrong_start_bytes() -> None:
    assert spec(EXAMPLE).parse(b"AB\x0a") == RegistrationError(
        "start bytes 41 42, expected AA 55", 0
    )
    assert spec(EXAMPLE).parse(b"\xaa\x56") == RegistrationError(
        "start bytes AA 56, expected AA 55", 1
    )


def test_wrong_checksum_names_both_values() -> None:
    broken = FRAME[:-1] + b"\x2d"
    assert spec(EXAMPLE).parse(broken) == RegistrationError(
        "checksum 0x2D, expected 0x2C (sum8 of the payload)", 13
    )


def test_empty_serial_and_non_ascii_serial() -> None:
    registration = spec(EXAMPLE)
    assert registration.parse(bytes.fromhex("AA 55 00 00")) == RegistrationError(
        "the id field 'serial' is empty", 3
    )
    # 0x80 is no ASCII; sum8 = 0x80 + 0x41 = 0xC1
    assert registration.parse(bytes.fromhex("AA 55 02 41 80 C1")) == RegistrationError(
        "serial: byte 0x80 is not ASCII", 4
    )


def test_length_beyond_max_payload() -> None:
    registration = spec({**EXAMPLE, "max_payload": 16})
    assert registration.parse(bytes.fromhex("AA 55 11")) == RegistrationError(
        "length 17, expected 0..16 (the payload's bytes)", 2
    )


def test_fixed_fields_two_byte_big_endian_length_counting_the_frame_crc16() -> None:
    registration = spec(
        {
            "start": "68 A0",
            "length": {"size": 2, "endian": "big", "counts": "frame"},
            "fields": [
                {"name": "station_id", "type": "bcd", "size": 4},
                {"name": "version", "type": "uint16", "endian": "big"},
                {"name": "kind", "type": "uint8", "offset": 7},
            ],
            "checksum": {"rule": "crc16_modbus", "over": "frame"},
            "id": "station_id",
            "accepted": "68 A0 00 06 00 00",
            "refused": "68 A0 00 06 01 00",
        }
    )
    # 68 A0 | 00 0E (14 bytes) | 12 34 56 78 | 01 02 | 00 (gap) | 05 | CRC16/MODBUS of the 12 bytes
    body = bytes.fromhex("68 A0 00 0E 12 34 56 78 01 02 00 05")
    crc = 0xFFFF
    for byte in body:  # the reference algorithm, written out independently of the module
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    frame = body + bytes((crc & 0xFF, crc >> 8))
    assert registration.parse(frame) == Registered(
        "12345678", 14, {"station_id": "12345678", "version": 0x0102, "kind": 5}
    )
    assert registration.parse(frame[:4]) == NeedMore(14)


def test_checksums_against_known_values() -> None:
    assert checksum("crc16_modbus", b"123456789") == 0x4B37  # the CRC catalogue's check value
    # a Modbus RTU read request: 01 03 00 00 00 0A, CRC on the wire C5 CD (low byte first)
    assert checksum("crc16_modbus", bytes.fromhex("01 03 00 00 00 0A")) == 0xCDC5
    assert checksum("sum8", bytes.fromhex("FF 02")) == 0x01
    assert checksum("xor8", bytes.fromhex("0F F0 01")) == 0xFE
    assert checksum("none", b"abc") == 0


def test_xor8_over_the_frame_and_a_numeric_id() -> None:
    registration = spec(
        {
            "start": "7E",
            "length": {"counts": "payload_and_checksum"},
            "fields": [{"name": "number", "type": "uint32"}],
            "checksum": {"rule": "xor8", "over": "frame"},
            "id": "number",
            "accepted": "7E 00",
            "refused": "7E 01",
        }
    )
    # 7E 05 | 39 30 00 00 (12345) | xor of 7E 05 39 30 00 00 = 0x72
    assert registration.parse(bytes.fromhex("7E 05 39 30 00 00 72")) == Registered(
        "12345", 7, {"number": 12345}
    )
    assert registration.parse(bytes.fromhex("7E 04")) == RegistrationError(
        "length 4, expected 5..255 (the bytes of the payload and the checksum)", 1
    )


@given(st.binary(max_size=300))
def test_any_bytes_parse_to_a_result_never_an_exception(data: bytes) -> None:
    result = spec(EXAMPLE).parse(data)
    assert isinstance(result, NeedMore | Registered | RegistrationError)
    if isinstance(result, RegistrationError):
        assert 0 <= result.offset <= len(data)
    if isinstance(result, Registered):
        assert result.consumed <= len(data)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_any_serial_round_trips_through_a_frame(serial: str) -> None:
    payload = serial.encode("ascii")
    frame = bytes((0xAA, 0x55, len(payload) % 256)) + payload + bytes((sum(payload) % 256,))
    result = spec(EXAMPLE).parse(frame)
    if len(payload) <= 255:
        assert result == Registered(serial, len(frame), {"serial": serial})


def test_frame_builds_what_parse_reads() -> None:
    registration = spec(EXAMPLE)
    assert registration.frame(b"SN20260001") == FRAME


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"id": "serial_no"}, ("registration", "id"), "no field named 'serial_no'"),
        (
            {
                "fields": [
                    {"name": "a", "type": "ascii", "size": "rest"},
                    {"name": "serial", "type": "uint8"},
                ]
            },
            ("registration", "fields", 0, "size"),
            "only the last field may take the rest",
        ),
        (
            {"fields": [{"name": "serial", "type": "ascii"}]},
            ("registration", "fields", 0),
            "missing key 'size'",
        ),
        (
            {"fields": [{"name": "serial", "type": "cp56"}]},
            ("registration", "fields", 0, "type"),
            "no cp56 in the registration",
        ),
        (
            {
                "fields": [
                    {"name": "serial", "type": "ascii", "size": 4},
                    {"name": "b", "type": "uint16", "offset": 3},
                ]
            },
            ("registration", "fields", 1, "offset"),
            "'b' (bytes 3..4) overlaps 'serial' (bytes 0..3)",
        ),
        (
            {"fields": [{"name": "serial", "type": "uint8", "size": 2}]},
            ("registration", "fields", 0, "size"),
            "uint8 has 1 bytes; remove `size`",
        ),
        ({"max_payload": 300}, ("registration", "max_payload"), "at most 255 bytes of payload"),
        ({"start": "AA 5"}, ("registration", "start"), "is not hex bytes"),
        (
            {"checksum": {"rule": "crc8"}},
            ("registration", "checksum", "rule"),
            "unknown checksum rule 'crc8'",
        ),
        (
            {"checksum": {"rule": "sum8", "endian": "big"}},
            ("registration", "checksum", "endian"),
            "endian applies to crc16_modbus only",
        ),
    ],
)
def test_registration_problems_name_their_path(
    change: dict[str, Any], path: tuple[str | int, ...], fragment: str
) -> None:
    found = problems({**EXAMPLE, **change})
    assert any(where == path and fragment in message for where, message in found), found
