"""Identification (bridge.stations.iec104.identify): who dialled in, told by the first ASDU's common address.

The charger's frames are spelled out here in bytes; the bridge's are read back by hand.
"""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.stations.iec104.apci import LinkParameters
from bridge.stations.iec104.identify import MAX_ASDUS, Identification, Identified, NotIdentified
from bridge.stations.iec104.session import Session104, SessionSettings
from bridge.stations.iec104.southbound import LinkUp, PointUpdate

P = LinkParameters()  # t1 15 s
STARTDT_ACT = bytes.fromhex("680407000000")
STARTDT_CON = bytes.fromhex("68040b000000")
# C_IC_NA_1 act to the global address 0xFFFF, IOA 0, QOI 20, as N(S) 0, N(R) 0
GLOBAL_GI = bytes.fromhex("680e0000000064010600ffff00000014")
WALL = datetime.datetime(2026, 3, 15, 4, 5, 6, tzinfo=datetime.UTC).timestamp()


def i_frame(ns: int, nr: int, payload: bytes) -> bytes:
    control = bytes([(ns << 1) & 0xFF, ns >> 7, (nr << 1) & 0xFF, nr >> 7])
    return bytes([0x68, len(payload) + 4]) + control + payload


def gi_con(ca: int) -> bytes:
    """The charger confirms the interrogation from its own common address (COT 7)."""
    return bytes([100, 1, 7, 0]) + ca.to_bytes(2, "little") + bytes.fromhex("00000014")


def single_point(ca: int, ioa: int, on: bool) -> bytes:
    return bytes([1, 1, 3, 0]) + ca.to_bytes(2, "little") + ioa.to_bytes(3, "little") + bytes([on])


def started(now: float = 0.0, **kwargs: float) -> Identification:
    who = Identification(P, now=now, **kwargs)  # type: ignore[arg-type]
    assert who.data_to_send() == STARTDT_ACT
    assert who.receive_data(STARTDT_CON, now) is None
    assert who.data_to_send() == GLOBAL_GI
    return who


def test_startdt_then_a_gi_to_the_global_address_then_the_first_asdus_ca_identifies() -> None:
    who = Identification(P, now=0.0)
    assert who.data_to_send() == STARTDT_ACT  # nothing else before STARTDT con
    assert who.data_to_send() == b""
    assert who.receive_data(STARTDT_CON, 0.1) is None
    assert who.data_to_send() == GLOBAL_GI
    first = gi_con(0x0107)
    assert who.receive_data(i_frame(0, 1, first), 0.2) == Identified(0x0107)
    assert who.result == Identified(0x0107)
    assert who.asdus == [first]
    assert who.next_deadline() is None
    assert who.receive_data(i_frame(1, 1, gi_con(9)), 0.3) is None  # decided once


def test_a_spontaneous_asdu_before_the_gi_con_identifies_too_and_the_first_one_decides() -> None:
    who = started()
    spont = single_point(42, 0x22, True)
    chunk = i_frame(0, 1, spont) + i_frame(1, 1, gi_con(43))
    assert who.receive_data(chunk, 0.5) == Identified(42)
    assert who.asdus == [spont, gi_con(43)]  # both kept, in order, for the session


def test_the_session_continues_on_the_identified_link_with_the_asdus_read_so_far() -> None:
    who = started()
    spont = single_point(7, 0x22, True)
    assert who.receive_data(i_frame(0, 1, gi_con(7)) + i_frame(1, 1, spont), 0.5) == Identified(7)
    zone = zoneinfo.ZoneInfo("Asia/Shanghai")
    session = Session104(SessionSettings(common_address=7, time_zone=zone), now=0.5)
    assert session.connection_made(1.0, WALL, who.link) == [LinkUp()]
    events = [e for asdu in who.asdus for e in session.receive_asdu(asdu, 1.0)]
    assert events == [PointUpdate(0x22, "M_SP_NA_1", True)]
    out = session.data_to_send()
    # the sequence numbers go on: the GI was N(S) 0, so the clock sync is N(S) 1, acknowledging 2
    assert out[:6] == bytes([0x68, 4 + 16, 2, 0, 4, 0])
    assert out[6:15] == bytes.fromhex("670106000700000000")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x00\x01\x02\x03\x04\x05", "bad_frame"),  # no start octet
        (bytes.fromhex("680300000000"), "bad_frame"),  # APDU length 3
        (i_frame(0, 0, gi_con(1)), "protocol"),  # an I-frame before STARTDT con
        (bytes.fromhex("680407000000"), "protocol"),  # STARTDT act from the controlled station
    ],
)
def test_garbage_is_not_identified_with_a_reason(data: bytes, kind: str) -> None:
    who = Identification(P, now=0.0)
    who.data_to_send()
    result = who.receive_data(data, 0.1)
    assert isinstance(result, NotIdentified)
    assert result.kind == kind
    assert result.reason
    assert who.asdus == []


def test_an_asdu_too_short_for_a_common_address_is_not_identified() -> None:
    who = started()
    result = who.receive_data(i_frame(0, 1, bytes([1, 1, 3, 0, 7])), 0.1)
    assert isinstance(result, NotIdentified)
    assert result.kind == "bad_frame"
    assert "too short" in result.reason


def test_no_asdu_within_the_timeout_is_not_identified() -> None:
    who = started(timeout=5.0)
    who.receive_data(bytes.fromhex("680401000200"), 1.0)  # S-frame: the GI acknowledged
    assert who.next_deadline() == pytest.approx(5.0)
    assert who.handle_timer(4.9) is None
    result = who.handle_timer(5.0)
    assert result == NotIdentified("timeout", "no ASDU within 5 s of the connection")
    assert who.next_deadline() is None


def test_no_startdt_con_within_t1_is_not_identified() -> None:
    who = Identification(P, now=0.0)
    who.data_to_send()
    assert who.next_deadline() == pytest.approx(15.0)
    result = who.handle_timer(15.0)
    assert isinstance(result, NotIdentified) and result.kind == "t1"


def test_at_most_max_asdus_are_kept_before_the_hand_over() -> None:
    who = started()
    chunk = b"".join(i_frame(n, 1, single_point(3, n, True)) for n in range(MAX_ASDUS + 36))
    assert who.receive_data(chunk, 0.5) == Identified(3)
    assert len(who.asdus) == MAX_ASDUS
    assert who.asdus[0] == single_point(3, 0, True)
    assert who.asdus[-1] == single_point(3, MAX_ASDUS - 1, True)


@settings(max_examples=200, deadline=None)
@given(start=st.booleans(), chunks=st.lists(st.binary(max_size=60), max_size=8))
def test_any_bytes_give_none_identified_or_not_identified_never_an_exception(
    start: bool, chunks: list[bytes]
) -> None:
    who = Identification(P, now=0.0)
    who.data_to_send()
    if start:
        who.receive_data(STARTDT_CON, 0.0)
    now = 0.0
    for chunk in chunks:
        now += 0.1
        result = who.receive_data(chunk, now)
        assert result is None or isinstance(result, Identified | NotIdentified)
        who.data_to_send()
    final = who.handle_timer(100.0)
    assert final is None or isinstance(final, Identified | NotIdentified)
    assert who.result is not None
    assert len(who.asdus) <= MAX_ASDUS
