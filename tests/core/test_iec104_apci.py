"""The IEC 60870-5-104 APCI link layer (bridge.stations.iec104.apci), the bridge being the controlling station.

The peer's frames are spelled out here, octet by octet (`i_frame`, `s_frame` and the U-frame constants),
and the bridge's output is read back by `decode`: neither uses the module's encoder.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bridge.ocppj.errors import BridgeMisuse
from bridge.stations.iec104.apci import (
    ApciLink,
    AsduReceived,
    DataTransferStarted,
    DataTransferStopped,
    LinkEvent,
    LinkFailed,
    LinkParameters,
)

P = LinkParameters()  # t1 15, t2 10, t3 20, k 12, w 8

STARTDT_ACT = bytes.fromhex("680407000000")
STARTDT_CON = bytes.fromhex("68040b000000")
STOPDT_ACT = bytes.fromhex("680413000000")
STOPDT_CON = bytes.fromhex("680423000000")
TESTFR_ACT = bytes.fromhex("680443000000")
TESTFR_CON = bytes.fromhex("680483000000")

EVENT_TYPES = (DataTransferStarted, AsduReceived, DataTransferStopped, LinkFailed)


def i_frame(ns: int, nr: int, asdu: bytes) -> bytes:
    return bytes([0x68, len(asdu) + 4, (ns << 1) & 0xFF, ns >> 7, (nr << 1) & 0xFF, nr >> 7]) + asdu


def s_frame(nr: int) -> bytes:
    return bytes([0x68, 4, 0x01, 0x00, (nr << 1) & 0xFF, nr >> 7])


def asdu(n: int) -> bytes:
    """A distinct, ASDU-shaped payload (M_SP_NA_1, one object) for the number n."""
    return bytes([1, 1, 3, 0, 1, 0, n & 0xFF, n >> 8 & 0xFF, 0, n & 1])


def decode(out: bytes) -> list[tuple[str, int, int, bytes]]:
    """The bridge's output as ("I", N(S), N(R), ASDU), ("S", 0, N(R), b"") or ("U", control, 0, b"")."""
    found = []
    pos = 0
    while pos < len(out):
        assert out[pos] == 0x68, f"start byte at {pos}"
        length = out[pos + 1]
        c = out[pos + 2 : pos + 6]
        if c[0] & 1 == 0:
            ns = (c[0] | c[1] << 8) >> 1
            nr = (c[2] | c[3] << 8) >> 1
            found.append(("I", ns, nr, out[pos + 6 : pos + 2 + length]))
        elif c[0] == 1:
            assert length == 4
            found.append(("S", 0, (c[2] | c[3] << 8) >> 1, b""))
        else:
            assert length == 4 and c[1:] == b"\0\0\0"
            found.append(("U", c[0], 0, b""))
        pos += 2 + length
    assert pos == len(out)
    return found


def started(parameters: LinkParameters = P, now: float = 0.0, **kwargs: int) -> ApciLink:
    link = ApciLink(parameters, now, **kwargs)
    link.start(now)
    assert link.data_to_send() == STARTDT_ACT
    assert link.receive_data(STARTDT_CON, now) == [DataTransferStarted()]
    assert link.started
    return link


def failure(events: list[LinkEvent]) -> LinkFailed:
    assert events, "expected a LinkFailed"
    last = events[-1]
    assert isinstance(last, LinkFailed)
    assert not any(isinstance(e, LinkFailed) for e in events[:-1])
    return last


# -- the test's own frame builders ---------------------------------------------------------------


def test_frame_builders_match_the_standard_octets() -> None:
    assert i_frame(0, 0, b"\x01") == bytes.fromhex("68050000000001")
    assert i_frame(5, 3, b"\x01") == bytes.fromhex("68050a00060001")
    assert i_frame(32767, 200, b"\x01") == bytes.fromhex("6805feff900101")
    assert s_frame(300) == bytes.fromhex("680401005802")


# -- parameters ----------------------------------------------------------------------------------


def test_default_parameters_are_the_standards_and_valid() -> None:
    assert (P.t0, P.t1, P.t2, P.t3, P.k, P.w) == (30.0, 15.0, 10.0, 20.0, 12, 8)
    assert P.problems() == []


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        (LinkParameters(t2=15.0), "t2 (15 s) must be shorter than t1 (15 s)"),
        (LinkParameters(t1=0.0), "t1 must be a positive number"),
        (LinkParameters(t3=float("nan")), "t3 must be a positive number"),
        (LinkParameters(t0=float("inf")), "t0 must be a positive number"),
        (LinkParameters(w=13), "need 1 <= w <= k <= 32767, got w=13, k=12"),
        (LinkParameters(w=0), "need 1 <= w"),
        (LinkParameters(k=40000, w=8), "k <= 32767"),
    ],
)
def test_invalid_parameters_are_named(parameters: LinkParameters, fragment: str) -> None:
    problems = parameters.problems()
    assert len(problems) == 1
    assert fragment in problems[0]
    with pytest.raises(BridgeMisuse, match="invalid APCI link parameters"):
        ApciLink(parameters, 0.0)


def test_max_apdu_outside_the_standard_is_misuse() -> None:
    with pytest.raises(BridgeMisuse, match="max_apdu"):
        ApciLink(P, 0.0, max_apdu=254)


# -- start handshake -----------------------------------------------------------------------------


def test_start_handshake() -> None:
    link = ApciLink(P, 100.0)
    assert not link.started
    assert link.data_to_send() == b""
    link.start(100.0)
    link.start(100.5)  # already asked: not repeated
    assert link.data_to_send() == STARTDT_ACT
    assert link.next_deadline() == 115.0  # t1 for the con
    assert link.receive_data(STARTDT_CON, 101.0) == [DataTransferStarted()]
    assert link.started
    assert link.next_deadline() == 121.0  # only t3 is left
    link.start(102.0)  # already started
    assert link.data_to_send() == b""


def test_startdt_con_unanswered_fails_with_t1() -> None:
    link = ApciLink(P, 0.0)
    link.start(0.0)
    assert link.handle_timer(14.9) == []
    assert link.handle_timer(15.0) == [LinkFailed("t1", "STARTDT con unanswered for 15 s")]


def test_asdus_sent_before_startdt_con_wait_for_it() -> None:
    link = ApciLink(P, 0.0)
    link.start(0.0)
    assert link.send_asdu(asdu(1), 0.0)
    assert link.send_asdu(asdu(2), 0.0)
    assert link.data_to_send() == STARTDT_ACT
    assert link.queued == 2
    assert link.receive_data(STARTDT_CON, 1.0) == [DataTransferStarted()]
    assert decode(link.data_to_send()) == [("I", 0, 0, asdu(1)), ("I", 1, 0, asdu(2))]
    assert (link.queued, link.unacknowledged, link.frames_sent) == (0, 2, 2)


def test_unsolicited_confirmations_are_ignored() -> None:
    link = ApciLink(P, 0.0)
    assert link.receive_data(STARTDT_CON + STOPDT_CON + TESTFR_CON, 1.0) == []
    assert not link.started
    assert link.failed is None


# -- receiving I-frames --------------------------------------------------------------------------


def test_i_frame_stream_split_at_every_byte() -> None:
    frames = [i_frame(n, 0, asdu(n) * (1 + n % 3)) for n in range(6)]
    stream = b"".join(frames)
    for cut in range(len(stream) + 1):
        link = started(LinkParameters(w=12))
        events = link.receive_data(stream[:cut], 1.0) + link.receive_data(stream[cut:], 1.0)
        assert events == [AsduReceived(asdu(n) * (1 + n % 3)) for n in range(6)]
        assert link.frames_received == 6
        assert link.bytes_received == len(STARTDT_CON) + len(stream)


def test_i_frame_stream_fed_byte_by_byte() -> None:
    stream = b"".join(i_frame(n, 0, asdu(n)) for n in range(20))
    link = started()
    events = []
    for b in stream:
        events += link.receive_data(bytes([b]), 1.0)
    assert events == [AsduReceived(asdu(n)) for n in range(20)]
    # w = 8: acknowledged after the 8th and the 16th; 4 still wait for w or t2
    assert decode(link.data_to_send()) == [("S", 0, 8, b""), ("S", 0, 16, b"")]


def test_asdu_event_is_bytes_even_from_a_bytearray() -> None:
    link = started()
    events = link.receive_data(bytearray(i_frame(0, 0, b"\x2d\x01")), 1.0)
    assert events == [AsduReceived(b"\x2d\x01")]
    assert isinstance(events[0], AsduReceived)
    assert type(events[0].asdu) is bytes


def test_s_frame_after_w_frames() -> None:
    link = started()
    for n in range(7):
        link.receive_data(i_frame(n, 0, asdu(n)), 1.0)
    assert link.data_to_send() == b""
    link.receive_data(i_frame(7, 0, asdu(7)), 1.0)
    assert link.data_to_send() == s_frame(8)


def test_s_frame_after_t2() -> None:
    link = started(now=0.0)
    link.receive_data(i_frame(0, 0, asdu(0)), 1.0)
    link.receive_data(i_frame(1, 0, asdu(1)), 4.0)
    assert link.next_deadline() == 11.0  # t2 from the oldest unacknowledged
    assert link.handle_timer(10.9) == []
    assert link.data_to_send() == b""
    assert link.handle_timer(11.0) == []
    assert link.data_to_send() == s_frame(2)
    assert link.next_deadline() == 24.0  # t3 from the last received frame


def test_sent_i_frame_carries_n_r_and_acknowledges() -> None:
    link = started()
    link.receive_data(i_frame(0, 0, asdu(0)) + i_frame(1, 0, asdu(1)), 1.0)
    assert link.send_asdu(asdu(100), 2.0)
    assert decode(link.data_to_send()) == [("I", 0, 2, asdu(100))]
    assert link.handle_timer(12.0) == []  # nothing left for t2 to acknowledge
    assert link.data_to_send() == b""


def test_i_frame_before_startdt_con_fails_the_link() -> None:
    link = ApciLink(P, 0.0)
    link.start(0.0)
    link.data_to_send()
    events = link.receive_data(i_frame(0, 0, asdu(0)), 1.0)
    assert events == [LinkFailed("protocol", "I-frame before STARTDT con")]


# -- sending I-frames, k and t1 ------------------------------------------------------------------


def test_k_window_blocks_and_releases_on_ack() -> None:
    link = started(LinkParameters(k=3, w=2))
    for n in range(5):
        assert link.send_asdu(asdu(n), 1.0)
    assert [f[1] for f in decode(link.data_to_send())] == [0, 1, 2]
    assert (link.unacknowledged, link.queued) == (3, 2)
    assert link.receive_data(s_frame(1), 2.0) == []
    assert decode(link.data_to_send()) == [("I", 3, 0, asdu(3))]
    assert (link.unacknowledged, link.queued) == (3, 1)
    # an I-frame's N(R) releases the window too
    assert link.receive_data(i_frame(0, 4, asdu(50)), 3.0) == [AsduReceived(asdu(50))]
    assert decode(link.data_to_send()) == [("I", 4, 1, asdu(4))]
    assert (link.unacknowledged, link.queued) == (1, 0)
    assert link.receive_data(s_frame(5), 4.0) == []
    assert link.unacknowledged == 0


def test_queue_is_bounded() -> None:
    link = ApciLink(P, 0.0, max_queued=2)
    assert link.send_asdu(asdu(0), 0.0)
    assert link.send_asdu(asdu(1), 0.0)
    assert not link.send_asdu(asdu(2), 0.0)
    assert link.queued == 2


@pytest.mark.parametrize("size", [0, 250])
def test_asdu_of_the_wrong_size_is_misuse(size: int) -> None:
    link = started()
    with pytest.raises(BridgeMisuse, match=rf"ASDU of {size} bytes \(1..249\)"):
        link.send_asdu(bytes(size), 1.0)
    assert link.send_asdu(bytes(249), 1.0)


def test_t1_expiry_fails_the_link() -> None:
    link = started(now=0.0)
    for n in range(6):
        link.send_asdu(asdu(n), float(n))
    link.receive_data(s_frame(5), 5.5)  # N(S) 0..4 acknowledged, 5 (sent at 5.0) is not
    assert link.next_deadline() == 20.0
    assert link.handle_timer(19.99) == []
    events = link.handle_timer(20.0)
    assert events == [LinkFailed("t1", "t1 expired waiting for the acknowledgement of N(S)=5")]
    assert link.failed == events[0]


def test_stopdt_con_unanswered_fails_with_t1() -> None:
    link = started(now=0.0)
    link.stop(2.0)
    assert link.data_to_send() == STOPDT_ACT
    assert link.handle_timer(17.0) == [LinkFailed("t1", "STOPDT con unanswered for 15 s")]


# -- t3 and TESTFR -------------------------------------------------------------------------------


def test_t3_sends_testfr_act_and_con_clears_it() -> None:
    link = started(now=0.0)
    assert link.next_deadline() == 20.0
    assert link.handle_timer(19.0) == []
    assert link.data_to_send() == b""
    assert link.handle_timer(20.0) == []
    assert link.data_to_send() == TESTFR_ACT
    assert link.next_deadline() == 35.0  # t1 for the con; t3 does not send another meanwhile
    assert link.handle_timer(30.0) == []
    assert link.data_to_send() == b""
    assert link.receive_data(TESTFR_CON, 31.0) == []
    assert link.next_deadline() == 51.0


def test_testfr_unanswered_fails_the_link() -> None:
    link = started(now=0.0)
    link.handle_timer(20.0)
    assert link.data_to_send() == TESTFR_ACT
    assert link.handle_timer(35.0) == [LinkFailed("testfr", "TESTFR act unanswered for 15 s")]


def test_any_received_frame_restarts_t3() -> None:
    link = started(now=0.0)
    link.receive_data(s_frame(0), 15.0)
    assert link.handle_timer(20.0) == []
    assert link.data_to_send() == b""
    assert link.next_deadline() == 35.0


def test_peer_testfr_act_is_answered() -> None:
    link = ApciLink(P, 0.0)  # in any state, before STARTDT too
    assert link.receive_data(TESTFR_ACT, 1.0) == []
    assert link.data_to_send() == TESTFR_CON
    link = started()
    assert link.receive_data(TESTFR_ACT + TESTFR_ACT, 1.0) == []
    assert link.data_to_send() == TESTFR_CON + TESTFR_CON


# -- sequence errors -----------------------------------------------------------------------------


def test_received_n_s_out_of_sequence_fails_the_link() -> None:
    link = started()
    stream = b"".join(i_frame(n, 0, asdu(n)) for n in range(7)) + i_frame(9, 0, asdu(9))
    events = link.receive_data(stream, 1.0)
    assert events[:7] == [AsduReceived(asdu(n)) for n in range(7)]
    assert failure(events) == LinkFailed("sequence", "sequence error: expected N(S)=7, got N(S)=9")


def test_repeated_n_s_fails_the_link() -> None:
    link = started()
    link.receive_data(i_frame(0, 0, asdu(0)), 1.0)
    events = link.receive_data(i_frame(0, 0, asdu(0)), 1.0)
    assert events == [LinkFailed("sequence", "sequence error: expected N(S)=1, got N(S)=0")]


def test_ack_of_i_frames_never_sent_fails_the_link() -> None:
    link = started()
    for n in range(12):
        link.send_asdu(asdu(n), 1.0)
    events = link.receive_data(s_frame(40), 2.0)
    assert events == [
        LinkFailed("sequence", "N(R)=40 acknowledges I-frames never sent (next N(S)=12)")
    ]


def test_ack_in_an_i_frame_is_checked_before_its_asdu_is_delivered() -> None:
    link = started()
    events = link.receive_data(i_frame(0, 1, asdu(0)), 1.0)
    assert events == [
        LinkFailed("sequence", "N(R)=1 acknowledges I-frames never sent (next N(S)=0)")
    ]


def test_ack_going_back_fails_the_link() -> None:
    link = started()
    for n in range(4):
        link.send_asdu(asdu(n), 1.0)
    assert link.receive_data(s_frame(3), 2.0) == []
    assert link.receive_data(s_frame(3), 2.0) == []  # the same N(R) again is fine
    events = link.receive_data(s_frame(2), 2.0)
    assert failure(events).kind == "sequence"
    assert failure(events).reason == "N(R)=2 goes back before the oldest unacknowledged N(S)=3"


# -- wrap-around ---------------------------------------------------------------------------------


def test_wrap_around_past_32767() -> None:
    link = started(send_sequence=32765, receive_sequence=32766)
    for n in range(5):
        assert link.send_asdu(asdu(n), 1.0)
    assert [(f[1], f[2]) for f in decode(link.data_to_send())] == [
        (32765, 32766),
        (32766, 32766),
        (32767, 32766),
        (0, 32766),
        (1, 32766),
    ]
    stream = b"".join(i_frame(ns, 0, asdu(ns)) for ns in (32766, 32767, 0, 1))
    events = link.receive_data(stream, 2.0)
    assert events == [AsduReceived(asdu(ns)) for ns in (32766, 32767, 0, 1)]
    assert link.unacknowledged == 2  # 0 and 1 wait
    assert link.receive_sequence == 2
    assert link.receive_data(s_frame(2), 3.0) == []
    assert link.unacknowledged == 0
    assert link.send_sequence == 2
    assert link.handle_timer(12.0) == []
    assert link.data_to_send() == s_frame(2)


def test_wrap_around_by_driving_frames() -> None:
    link = started(LinkParameters(k=32767, w=32767, t1=1e9, t2=1e8, t3=1e9))
    stream = b"".join(i_frame(n & 0x7FFF, 0, b"\x01") for n in range(32770))
    events = link.receive_data(stream, 1.0)
    assert len(events) == 32770
    assert link.receive_sequence == 2
    assert link.data_to_send() == s_frame(32767)  # the w-th frame
    assert link.failed is None


def test_ack_range_across_the_wrap() -> None:
    link = started(send_sequence=32766)
    for n in range(4):
        link.send_asdu(asdu(n), 1.0)
    events = link.receive_data(s_frame(3), 2.0)
    assert events == [
        LinkFailed("sequence", "N(R)=3 acknowledges I-frames never sent (next N(S)=2)")
    ]


# -- malformed bytes -----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 3, 254, 255])
def test_bad_apdu_length_fails_with_its_offset(length: int) -> None:
    link = started()
    events = link.receive_data(i_frame(0, 0, asdu(0)) + bytes([0x68, length, 0, 0]), 1.0)
    # the length octet: STARTDT con (6) + I-frame (16) + start byte
    assert failure(events) == LinkFailed(
        "bad_frame", f"bad frame at byte 23: APDU length {length} (4..253)"
    )
    assert events[:-1] == [AsduReceived(asdu(0))]


def test_length_beyond_max_apdu_is_a_bad_frame() -> None:
    link = ApciLink(P, 0.0, max_apdu=100)
    assert link.receive_data(bytes([0x68, 101]), 0.0) == [
        LinkFailed("bad_frame", "bad frame at byte 1: APDU length 101 (4..100)")
    ]


def test_bad_start_byte_offset_counts_from_the_stream_start() -> None:
    link = started()
    stream = i_frame(0, 0, asdu(0)) * 1 + b"\x41"
    assert link.receive_data(stream[:10], 1.0) == []
    events = link.receive_data(stream[10:], 1.0)
    assert failure(events) == LinkFailed(
        "bad_frame", "bad frame at byte 22: start byte 0x41, expected 0x68"
    )


def test_bad_start_byte_at_the_very_first_byte() -> None:
    link = ApciLink(P, 0.0)
    assert link.receive_data(b"GET / HTTP/1.1\r\n", 0.0) == [
        LinkFailed("bad_frame", "bad frame at byte 0: start byte 0x47, expected 0x68")
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("680400000000", "bad frame at byte 1: an I-frame without ASDU (APDU length 4)"),
        ("6805010000000a", "bad frame at byte 1: S-frame of APDU length 5, expected 4"),
        ("680401000100", "bad frame at byte 4: reserved bit set in an S-frame"),
        ("680405000000", "bad frame at byte 2: S-frame control octet 0x05, expected 0x01"),
        ("680403000000", "bad frame at byte 2: U-frame control octet 0x03"),
        ("68044b000000", "bad frame at byte 2: U-frame control octet 0x4B"),
        ("680443000100", "bad frame at byte 4: reserved bit set in a TESTFR act"),
        ("68058300000000", "bad frame at byte 1: TESTFR con of APDU length 5, expected 4"),
    ],
)
def test_malformed_control_field_is_a_bad_frame(frame: str, reason: str) -> None:
    link = ApciLink(P, 0.0)
    assert link.receive_data(bytes.fromhex(frame), 0.0) == [LinkFailed("bad_frame", reason)]


@pytest.mark.parametrize(
    ("frame", "name"), [(STARTDT_ACT, "STARTDT act"), (STOPDT_ACT, "STOPDT act")]
)
def test_act_from_the_controlled_station_is_a_protocol_failure(frame: bytes, name: str) -> None:
    link = started()
    assert link.receive_data(frame, 1.0) == [
        LinkFailed(
            "protocol", f"{name} from the controlled station (the bridge is the controlling one)"
        )
    ]


# -- stop ----------------------------------------------------------------------------------------


def test_stopdt() -> None:
    link = started()
    link.receive_data(i_frame(0, 0, asdu(0)), 1.0)
    assert link.send_asdu(asdu(100), 1.0)
    link.data_to_send()
    link.receive_data(i_frame(1, 0, asdu(1)), 1.5)
    link.stop(2.0)
    # what was received is acknowledged first: the station confirms only when all is acknowledged
    assert link.data_to_send() == s_frame(2) + STOPDT_ACT
    link.stop(2.1)
    assert link.data_to_send() == b""
    assert link.send_asdu(asdu(101), 2.0)  # waits: no I-frames after STOPDT act
    assert link.data_to_send() == b""
    # I-frames between STOPDT act and con are delivered and acknowledged at once
    assert link.receive_data(i_frame(2, 1, asdu(2)), 3.0) == [AsduReceived(asdu(2))]
    assert link.data_to_send() == s_frame(3)
    assert link.unacknowledged == 0
    assert link.receive_data(STOPDT_CON, 4.0) == [DataTransferStopped()]
    assert not link.started
    assert link.next_deadline() == 24.0  # t3 only
    events = link.receive_data(i_frame(3, 1, asdu(3)), 5.0)
    assert events == [LinkFailed("protocol", "I-frame after STOPDT con")]


def test_restart_after_stop_sends_what_waited() -> None:
    link = started()
    link.stop(1.0)
    assert link.send_asdu(asdu(7), 1.0)
    link.receive_data(STOPDT_CON, 2.0)
    link.data_to_send()
    link.start(3.0)
    assert link.data_to_send() == STARTDT_ACT
    assert link.receive_data(STARTDT_CON, 3.5) == [DataTransferStarted()]
    assert decode(link.data_to_send()) == [("I", 0, 0, asdu(7))]


def test_stop_before_start_does_nothing() -> None:
    link = ApciLink(P, 0.0)
    link.stop(1.0)
    assert link.data_to_send() == b""


def test_start_while_stopping_is_ignored() -> None:
    link = started()
    link.stop(1.0)
    link.data_to_send()
    link.start(1.5)
    assert link.data_to_send() == b""
    assert link.receive_data(STOPDT_CON, 2.0) == [DataTransferStopped()]


# -- after a failure -----------------------------------------------------------------------------


def test_every_call_after_a_failure_is_a_no_op() -> None:
    link = started()
    link.send_asdu(asdu(0), 1.0)
    link.receive_data(TESTFR_ACT, 1.0)  # its con stays undrained
    events = link.receive_data(b"\x00", 2.0)
    assert failure(events).kind == "bad_frame"
    assert link.data_to_send() == b""
    assert link.receive_data(i_frame(0, 1, asdu(0)), 3.0) == []
    assert link.handle_timer(1000.0) == []
    assert link.next_deadline() is None
    assert not link.send_asdu(asdu(1), 3.0)
    link.start(3.0)
    link.stop(3.0)
    assert link.data_to_send() == b""
    assert link.failed == events[-1]


# -- properties ----------------------------------------------------------------------------------


def _frame_like() -> st.SearchStrategy[bytes]:
    control = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x07, 0x0B, 0x13, 0x23, 0x43, 0x83, 0xFF])
    return st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda c, rest, body, length: bytes([0x68, length, c]) + rest + body,
            control,
            st.binary(min_size=3, max_size=3),
            st.binary(max_size=20),
            st.integers(0, 255),
        ),
        st.builds(
            lambda c, rest: bytes([0x68, 4, c]) + rest, control, st.binary(min_size=3, max_size=3)
        ),
        st.builds(
            lambda ns, nr, body: i_frame(ns, nr, body),
            st.integers(0, 32767),
            st.integers(0, 32767),
            st.binary(min_size=1, max_size=30),
        ),
        st.just(STARTDT_CON),
        st.just(TESTFR_ACT),
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_frame_like(), max_size=30),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
    start=st.booleans(),
    sends=st.integers(0, 15),
)
def test_any_bytes_in_any_chunking_never_raise(
    pieces: list[bytes], cuts: list[int], start: bool, sends: int
) -> None:
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    link = ApciLink(P, 0.0)
    if start:
        link.start(0.0)
    now = 0.0
    failures = 0
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        now += 1.5
        if i < sends:
            link.send_asdu(asdu(i), now)
        events = link.receive_data(stream[a:b], now) + link.handle_timer(now)
        assert all(isinstance(e, EVENT_TYPES) for e in events)
        failures += sum(isinstance(e, LinkFailed) for e in events)
        if failures:
            assert link.failed is not None
        assert len(link._buf) <= 254
        assert isinstance(link.data_to_send(), bytes)
    assert failures <= 1
    if link.failed is not None:
        assert link.failed.kind in {"t1", "testfr", "sequence", "bad_frame", "protocol"}


class DeliveryMachine(RuleBasedStateMachine):
    """A well-behaved controlled station talks to the link over a stream cut at random places.

    Every ASDU each side sends arrives exactly once and in order; the bridge never has more than k
    I-frames unacknowledged, acknowledges after at most w, and its N(R)s never run ahead of what was
    delivered.
    """

    PARAMS = LinkParameters(k=5, w=3)

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.link = ApciLink(self.PARAMS, self.now, max_queued=10_000)
        self.link.start(self.now)
        self.peer_vs = 0  # the peer's next N(S)
        self.peer_acked = 0  # the peer's last N(R) sent
        self.seen_from_bridge = 0  # bridge I-frames the peer has read
        self.pending = b""  # peer bytes not yet given to the link
        self.peer_sent: list[bytes] = []
        self.peer_sent_frames_delivered = 0
        self.delivered: list[bytes] = []
        self.bridge_accepted: list[bytes] = []
        self.bridge_sent: list[bytes] = []
        self.bridge_last_nr = 0
        self.counter = 0
        self._read_bridge()
        self.pending += STARTDT_CON
        self._deliver_all()

    def _read_bridge(self) -> None:
        for kind, a, b, payload in decode(self.link.data_to_send()):
            if kind == "I":
                assert a == len(self.bridge_sent) % 32768
                self.bridge_sent.append(payload)
                self.seen_from_bridge += 1
            if kind in "IS":
                assert (b - self.bridge_last_nr) % 32768 <= len(
                    self.delivered
                ) - self.bridge_last_nr
                self.bridge_last_nr = b
            if kind == "U":
                assert a in (0x07, 0x43)
                if a == 0x43:
                    self.pending += TESTFR_CON

    def _feed(self, chunk: bytes) -> None:
        for event in self.link.receive_data(chunk, self.now):
            assert not isinstance(event, LinkFailed), event
            if isinstance(event, AsduReceived):
                self.delivered.append(event.asdu)
        self._read_bridge()

    def _deliver_all(self) -> None:
        chunk, self.pending = self.pending, b""
        self._feed(chunk)

    def _ack_choice(self, fraction: float) -> int:
        unacked = self.seen_from_bridge - self.peer_acked
        self.peer_acked += round(unacked * fraction)
        return self.peer_acked % 32768

    @rule(size=st.integers(1, 40), fraction=st.floats(0, 1))
    def peer_sends(self, size: int, fraction: float) -> None:
        self.counter += 1
        payload = bytes([self.counter & 0xFF]) * size
        self.pending += i_frame(self.peer_vs % 32768, self._ack_choice(fraction), payload)
        self.peer_vs += 1
        self.peer_sent.append(payload)

    @rule(fraction=st.floats(0, 1))
    def peer_acknowledges(self, fraction: float) -> None:
        self.pending += s_frame(self._ack_choice(fraction))

    @rule(size=st.integers(1, 40))
    def bridge_sends(self, size: int) -> None:
        self.counter += 1
        payload = bytes([self.counter & 0xFF]) * size
        assert self.link.send_asdu(payload, self.now)
        self.bridge_accepted.append(payload)
        self._read_bridge()

    @precondition(lambda self: self.pending)
    @rule(cut=st.integers(1, 400))
    def deliver_some(self, cut: int) -> None:
        chunk, self.pending = self.pending[:cut], self.pending[cut:]
        self._feed(chunk)

    @rule(dt=st.floats(0, 9))
    def time_passes(self, dt: float) -> None:
        # a well-behaved station answers before t1: everything outstanding is acknowledged and arrives
        self.pending += s_frame(self._ack_choice(1.0))
        self._deliver_all()
        self.now += dt
        assert self.link.handle_timer(self.now) == []
        self._read_bridge()

    @invariant()
    def in_order_exactly_once(self) -> None:
        assert self.link.failed is None
        assert self.delivered == self.peer_sent[: len(self.delivered)]
        assert self.bridge_sent == self.bridge_accepted[: len(self.bridge_sent)]
        assert self.link.unacknowledged <= self.PARAMS.k
        assert len(self.delivered) - self.bridge_last_nr < self.PARAMS.w
        assert len(self.link._buf) <= 254

    def teardown(self) -> None:
        for _ in range(len(self.bridge_accepted) + 2):
            self.time_passes(0.0)
        assert self.delivered == self.peer_sent
        assert self.bridge_sent == self.bridge_accepted


TestDelivery = DeliveryMachine.TestCase
TestDelivery.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
