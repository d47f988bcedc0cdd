"""Registration frames on the 104 link (issue: vendor variants as tables): the session of a dial-out
charger and the identification of one that dials in, driven with bytes spelled out here.

The layout is the shipped example table's (mappings/example-dialin-card.yaml): `AA 55`, a 1-byte
length n, n bytes of ASCII serial, a 1-byte checksum (the serial's bytes summed mod 256); answered
`AA 55 01 00` (accepted) or `AA 55 01 01` (refused).
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path

import pytest

from adapters.mapping_files import compile_file
from bridge.stations.iec104.apci import LinkParameters
from bridge.stations.iec104.identify import (
    Identification,
    Identified,
    NotIdentified,
    RegisteredCharger,
)
from bridge.stations.iec104.session import Session104, SessionSettings
from bridge.stations.iec104.southbound import LinkUp

TABLE = compile_file(
    Path(__file__).resolve().parents[2] / "mappings" / "example-dialin-card.yaml", 2
)
SPEC = TABLE.registration
STARTDT_ACT = bytes.fromhex("680407000000")
STARTDT_CON = bytes.fromhex("68040b000000")
ACCEPTED = bytes.fromhex("aa550100")
REFUSED = bytes.fromhex("aa550101")
WALL = 1_800_000_000.0


def registration(serial: bytes) -> bytes:
    return bytes.fromhex("aa55") + bytes([len(serial)]) + serial + bytes([sum(serial) % 256])


def session(registration_id: str | None = "SN20260001") -> Session104:
    assert SPEC is not None
    settings = SessionSettings(
        common_address=1,
        time_zone=zoneinfo.ZoneInfo("Asia/Shanghai"),
        link=LinkParameters(t0=5.0),
        registration=SPEC,
        registration_id=registration_id,
    )
    return Session104(settings, now=0.0)


def test_the_example_tables_layout_reads_the_spelled_out_frame() -> None:
    assert SPEC is not None
    frame = bytes.fromhex("aa550a534e32303236303030312c")  # "SN20260001", checksum 0x2C
    found = SPEC.parse(frame + b"rest")
    assert (getattr(found, "id", None), getattr(found, "consumed", None)) == ("SN20260001", 14)


def test_startdt_waits_for_the_registration_then_accepted_then_startdt() -> None:
    link = session()
    link.connection_made(0.0, WALL)
    assert link.data_to_send() == b""  # no STARTDT before the registration frame
    frame = registration(b"SN20260001")
    assert link.receive_data(frame[:4], 0.1, WALL) == []  # a frame in pieces
    assert link.data_to_send() == b""
    assert link.receive_data(frame[4:], 0.2, WALL) == []
    assert link.data_to_send() == ACCEPTED + STARTDT_ACT
    assert link.registered_id == "SN20260001"
    assert link.receive_data(STARTDT_CON, 0.3, WALL) == [LinkUp()]


def test_registration_and_startdt_con_in_one_read() -> None:
    link = session()
    link.connection_made(0.0, WALL)
    assert link.receive_data(registration(b"SN20260001"), 0.1, WALL) == []
    link.data_to_send()
    assert link.receive_data(STARTDT_CON, 0.2, WALL) == [LinkUp()]


def test_another_id_is_refused_and_the_link_fails() -> None:
    link = session()
    link.connection_made(0.0, WALL)
    link.receive_data(registration(b"SN99999999"), 0.1, WALL)
    assert link.data_to_send() == REFUSED
    failure = link.failure
    assert failure is not None and failure.kind == "registration"
    assert "'SN99999999'" in failure.reason and "SN20260001" in failure.reason


def test_a_bad_checksum_fails_with_the_byte_and_sends_nothing() -> None:
    link = session()
    link.connection_made(0.0, WALL)
    frame = bytearray(registration(b"SN20260001"))
    frame[-1] ^= 0xFF
    link.receive_data(bytes(frame), 0.1, WALL)
    assert link.data_to_send() == b""
    failure = link.failure
    assert failure is not None and failure.kind == "registration"
    assert "at byte 13" in failure.reason and "checksum" in failure.reason


def test_a_charger_that_starts_with_104_gets_startdt_at_once() -> None:
    link = session()
    link.connection_made(0.0, WALL)
    assert link.receive_data(bytes.fromhex("680443000000"), 0.1, WALL) == []  # TESTFR act
    out = link.data_to_send()
    assert STARTDT_ACT in out and bytes.fromhex("680483000000") in out  # STARTDT, TESTFR con
    assert link.failure is None


def test_no_registration_within_t0_starts_anyway_with_a_notice() -> None:
    link = session()
    link.connection_made(0.0, WALL)
    assert link.next_deadline() == 5.0
    link.handle_timer(5.0, WALL)
    assert link.data_to_send() == STARTDT_ACT
    assert [n.kind for n in link.notices()] == ["registration-missing"]


@pytest.mark.parametrize("size", [1, 100, 300, 1000])
def test_garbage_before_startdt_never_raises_and_is_bounded(size: int) -> None:
    link = session()
    link.connection_made(0.0, WALL)
    link.receive_data(bytes([0xAA, 0x55, 0xFF]) + b"x" * size, 0.1, WALL)
    assert link.failure is not None or len(link._pre) <= SPEC.max_size  # type: ignore[union-attr]


def test_dial_in_identification_by_registration_frame() -> None:
    assert SPEC is not None
    who = Identification(LinkParameters(), now=0.0, registrations=[SPEC])
    assert who.data_to_send() == b""  # waits for a registration first
    result = who.receive_data(registration(b"SN20260001") + STARTDT_CON[:3], 0.1)
    assert isinstance(result, RegisteredCharger)
    assert (result.registration_id, result.rest) == ("SN20260001", STARTDT_CON[:3])
    who.start_link(0.2)
    assert who.data_to_send() == STARTDT_ACT


def test_dial_in_without_registration_goes_the_common_address_way() -> None:
    assert SPEC is not None
    who = Identification(LinkParameters(), now=0.0, registrations=[SPEC], registration_wait=2.0)
    assert who.next_deadline() == 2.0
    assert who.handle_timer(2.0) is None
    assert who.data_to_send() == STARTDT_ACT
    who.receive_data(STARTDT_CON, 2.1)
    gi = who.data_to_send()
    assert gi[6:] == bytes.fromhex("64010600ffff00000014")  # C_IC_NA_1 to CA 0xFFFF, QOI 20
    asdu = bytes.fromhex("64010700010000000014")  # its ACT_CON from common address 1
    frame = bytes([0x68, 4 + len(asdu), 0, 0, 2, 0]) + asdu
    assert who.receive_data(frame, 2.2) == Identified(1)


def test_dial_in_garbage_instead_of_a_registration_is_refused_with_a_reason() -> None:
    assert SPEC is not None
    who = Identification(LinkParameters(), now=0.0, registrations=[SPEC])
    result = who.receive_data(b"GET / HTTP/1.1\r\n", 0.1)
    assert isinstance(result, NotIdentified)
    assert result.kind == "registration"
