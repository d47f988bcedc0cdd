"""Session104 (bridge.stations.iec104.session): the charger's side of the conversation spelled out in bytes.

The charger's frames are written here octet by octet (`i_frame`, `asdu` and the hex literals); what the
bridge sends is read back by hand (`frames`), never with the product's encoder or decoder. Each test
names the rule of the module's docstring (or of IEC 60870-5-101/104) it checks.
"""

from __future__ import annotations

import datetime
import struct
import zoneinfo
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.stations.iec104.apci import ApciLink, LinkParameters
from bridge.stations.iec104.session import NOTICE_INTERVAL, LinkNotice, Session104, SessionSettings
from bridge.stations.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    RawAsdu,
    Send104Command,
    Send104Private,
)
from bridge.stations.iec104.vocabulary import TypeId

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
CA = 1

STARTDT_ACT = bytes.fromhex("680407000000")
STARTDT_CON = bytes.fromhex("68040b000000")
TESTFR_ACT = bytes.fromhex("680443000000")
TESTFR_CON = bytes.fromhex("680483000000")

# 2026-03-15 04:05:06.789 UTC = Sunday 12:05:06.789 in Shanghai (UTC+8, no DST)
WALL = datetime.datetime(2026, 3, 15, 4, 5, 6, 789000, tzinfo=datetime.UTC).timestamp()
# CP56Time2a of that instant: ms 6789 = 0x1A85, minute 5, hour 12, day 15 | Sunday (7) << 5, March, 26
WALL_CP56 = bytes.fromhex("851a050cef031a")

EVENT_TYPES = (PointUpdate, CommandConfirmed, LinkUp, LinkDown)


# --- the charger's bytes, by hand -------------------------------------------------------------------


def i_frame(ns: int, nr: int, payload: bytes) -> bytes:
    return bytes([0x68, len(payload) + 4, (ns << 1) & 0xFF, ns >> 7, (nr << 1) & 0xFF, nr >> 7]) + (
        payload
    )


def s_frame(nr: int) -> bytes:
    return bytes([0x68, 4, 0x01, 0x00, (nr << 1) & 0xFF, nr >> 7])


def ioa(address: int) -> bytes:
    return address.to_bytes(3, "little")


def asdu(type_id: int, cot: int, objects: bytes, *, count: int = 1, sq: bool = False,
         ca: int = CA, negative: bool = False) -> bytes:  # fmt: skip
    """Data unit identifier (type, VSQ, COT with P/N, originator 0, CA) followed by `objects`."""
    vsq = count | (0x80 if sq else 0)
    return (
        bytes([type_id, vsq, cot | (0x40 if negative else 0), 0])
        + ca.to_bytes(2, "little")
        + (objects)
    )


def frames(out: bytes) -> list[tuple[str, int, int, bytes]]:
    """What the bridge sent: ("I", N(S), N(R), ASDU), ("S", 0, N(R), b"") or ("U", control, 0, b"")."""
    found = []
    pos = 0
    while pos < len(out):
        assert out[pos] == 0x68
        length = out[pos + 1]
        c = out[pos + 2 : pos + 6]
        if c[0] & 1 == 0:
            found.append(("I", (c[0] | c[1] << 8) >> 1, (c[2] | c[3] << 8) >> 1, out[pos + 6 : pos + 2 + length]))  # fmt: skip
        elif c[0] == 1:
            found.append(("S", 0, (c[2] | c[3] << 8) >> 1, b""))
        else:
            found.append(("U", c[0], 0, b""))
        pos += 2 + length
    assert pos == len(out)
    return found


class Charger:
    """The charger's end of one connection: numbers its I-frames, acknowledges the bridge's."""

    def __init__(self, session: Session104) -> None:
        self.session = session
        self.ns = 0  # the charger's V(S)
        self.nr = 0  # I-frames received from the bridge
        self.now = 0.0
        self.seen: list[bytes] = []  # every ASDU the bridge sent, in order

    def connect(self, wall: float = WALL) -> list[LinkEvent]:
        self.session.connection_made(self.now, wall)
        assert self.session.data_to_send() == STARTDT_ACT
        return self.session.receive_data(STARTDT_CON, self.now, wall)

    def send(self, payload: bytes, now: float | None = None) -> list[LinkEvent]:
        if now is not None:
            self.now = now
        frame = i_frame(self.ns, self.nr, payload)
        self.ns += 1
        return self.session.receive_data(frame, self.now, WALL)

    def ack(self) -> None:
        self.read()
        assert self.session.receive_data(s_frame(self.nr), self.now, WALL) == []

    def read(self) -> list[bytes]:
        """The ASDUs the bridge sent since the last read (its other frames checked and answered)."""
        new = []
        for kind, ns, _nr, payload in frames(self.session.data_to_send()):
            if kind == "I":
                assert ns == self.nr, "the bridge numbers its I-frames from 0 without a gap"
                self.nr += 1
                new.append(payload)
        self.seen += new
        return new


def settings_for(**kwargs: object) -> SessionSettings:
    values: dict[str, object] = {"common_address": CA, "time_zone": SHANGHAI}
    values.update(kwargs)
    return SessionSettings(**values)  # type: ignore[arg-type]


def up(**kwargs: object) -> Charger:
    """A session whose link is up, the start-up ASDUs read and acknowledged."""
    charger = Charger(Session104(settings_for(**kwargs), now=0.0))
    assert charger.connect() == [LinkUp()]
    charger.read()
    charger.ack()
    return charger


def confirmations(events: Sequence[object]) -> list[tuple[int, bool]]:
    return [(e.command_id, e.positive) for e in events if isinstance(e, CommandConfirmed)]


def command(command_id: int, address: int = 0x6001, type_id: TypeId = TypeId.C_SC_NA_1,
            value: bool | int | float = True, **kwargs: object) -> Send104Command:  # fmt: skip
    return Send104Command(command_id, address, type_id, value, **kwargs)  # type: ignore[arg-type]


SC_ON = ioa(0x6001) + b"\x01"  # C_SC_NA_1 object: IOA 0x6001, SCO on, QU 0, execute


# --- start-up --------------------------------------------------------------------------------------


def test_startdt_act_then_con_is_link_up_then_clock_sync_gi_ci_in_that_order() -> None:
    session = Session104(settings_for(), now=0.0)
    session.connection_made(0.0, WALL)
    assert session.data_to_send() == STARTDT_ACT
    assert [session.is_up] == [False]
    assert session.receive_data(STARTDT_CON, 0.0, WALL) == [LinkUp()]
    assert session.is_up
    sent = frames(session.data_to_send())
    assert sent == [
        # C_CS_NA_1 act to CA 1, IOA 0, the table's local time (Asia/Shanghai)
        ("I", 0, 0, bytes.fromhex("670106000100000000") + WALL_CP56),
        # C_IC_NA_1 act, QOI 20 (station interrogation)
        ("I", 1, 0, bytes.fromhex("64010600010000000014")),
        # C_CI_NA_1 act, QCC 5 (general counter request, no freeze)
        ("I", 2, 0, bytes.fromhex("65010600010000000005")),
    ]


def test_clock_sync_sets_the_su_bit_in_a_summer_time_zone() -> None:
    session = Session104(settings_for(time_zone=BERLIN, clock_sync=True), now=0.0)
    summer = datetime.datetime(2026, 7, 1, 10, 0, 0, tzinfo=datetime.UTC).timestamp()
    session.connection_made(0.0, summer)
    session.data_to_send()
    session.receive_data(STARTDT_CON, 0.0, summer)
    first = frames(session.data_to_send())[0][3]
    assert first[:9] == bytes.fromhex("670106000100000000")
    # 12:00:00.000 CEST, Wednesday 1 July 2026: hour byte 12 | SU (0x80), day 1 | 3 << 5
    assert first[9:] == bytes.fromhex("0000008c61071a")


def test_no_clock_sync_when_the_table_does_not_ask_for_it() -> None:
    session = Session104(settings_for(clock_sync=False), now=0.0)
    session.connection_made(0.0, WALL)
    session.data_to_send()
    session.receive_data(STARTDT_CON, 0.0, WALL)
    assert [f[3][0] for f in frames(session.data_to_send())] == [0x64, 0x65]


def test_no_i_frame_before_startdt_con_and_no_link_up() -> None:
    session = Session104(settings_for(), now=0.0)
    session.connection_made(0.0, WALL)
    assert session.data_to_send() == STARTDT_ACT
    assert session.command(command(1), 0.0) == [
        CommandConfirmed(1, 0x6001, False, "the 104 link is down")
    ]
    session.interrogate(False, 0.0)
    assert session.data_to_send() == b""


def test_periodic_interrogations_follow_now_and_the_cores_request_restarts_the_period() -> None:
    quiet = LinkParameters(t3=10_000.0)  # no TESTFR in between: only the interrogations are sent
    charger = up(
        general_interrogation_interval=60.0, counter_interrogation_interval=0.0, link=quiet
    )
    session = charger.session
    gi = bytes.fromhex("64010600010000000014")
    assert session.next_deadline() == pytest.approx(60.0)
    session.handle_timer(59.0, WALL)
    assert charger.read() == []  # not yet due
    session.handle_timer(60.0, WALL)
    assert charger.read() == [gi]  # counters: interval 0 = never after the first
    charger.now = 61.0
    charger.ack()
    # the core asks for one at 90: the next periodic one is 60 s after that, not at 120
    session.interrogate(False, 90.0)
    assert charger.read() == [gi]
    charger.now = 91.0
    charger.ack()
    session.handle_timer(120.0, WALL)
    assert charger.read() == []
    assert session.next_deadline() == pytest.approx(150.0)
    session.handle_timer(150.0, WALL)
    assert charger.read() == [gi]
    assert session.failure is None


def test_periodic_counter_interrogation() -> None:
    quiet = LinkParameters(t3=10_000.0)
    charger = up(
        general_interrogation_interval=0.0, counter_interrogation_interval=30.0, link=quiet
    )
    assert charger.session.next_deadline() == pytest.approx(30.0)
    charger.session.handle_timer(30.0, WALL)
    assert charger.read() == [bytes.fromhex("65010600010000000005")]


# --- monitoring ------------------------------------------------------------------------------------


def test_single_points_sq0_with_their_quality_flags() -> None:
    charger = up()
    objects = ioa(0x0022) + b"\x01" + ioa(0x0021) + b"\x90" + ioa(0x0023) + b"\x60"
    events = charger.send(asdu(1, 3, objects, count=3))
    assert events == [
        PointUpdate(0x0022, "M_SP_NA_1", True, frozenset(), None),
        PointUpdate(0x0021, "M_SP_NA_1", False, frozenset({"Invalid", "Blocked"}), None),
        PointUpdate(0x0023, "M_SP_NA_1", False, frozenset({"NonTopical", "Substituted"}), None),
    ]


def test_float_measurements_sq1_consecutive_addresses() -> None:
    charger = up()
    objects = ioa(0x4001) + struct.pack("<fB", 230.5, 0) + struct.pack("<fB", 32.25, 0x01)
    events = charger.send(asdu(13, 20, objects, count=2, sq=True))
    assert events == [
        PointUpdate(0x4001, "M_ME_NC_1", 230.5, frozenset(), None),
        PointUpdate(0x4002, "M_ME_NC_1", 32.25, frozenset({"Overflow"}), None),
    ]


def test_double_point_scaled_value_and_counter_values() -> None:
    charger = up()
    events = charger.send(asdu(3, 20, ioa(0x0025) + b"\x02"))  # DIQ: on
    events += charger.send(asdu(11, 3, ioa(0x4100) + struct.pack("<hB", -1234, 0)))
    # BCR: 100000 counts, sequence number 3, carry (0x20)
    events += charger.send(asdu(15, 37, ioa(0x6401) + struct.pack("<iB", 100_000, 0x23)))
    assert events == [
        PointUpdate(0x0025, "M_DP_NA_1", 2, frozenset(), None),
        PointUpdate(0x4100, "M_ME_NB_1", -1234, frozenset(), None),
        PointUpdate(0x6401, "M_IT_NA_1", 100_000, frozenset({"Carry"}), None),
    ]


def test_cp56_time_tags_are_read_in_the_tables_time_zone() -> None:
    charger = up()
    events = charger.send(asdu(30, 3, ioa(0x0021) + b"\x01" + WALL_CP56))  # M_SP_TB_1
    assert len(events) == 1
    update = events[0]
    assert isinstance(update, PointUpdate)
    assert (update.ioa, update.type_id, update.value) == (0x0021, "M_SP_TB_1", True)
    assert update.timestamp == pytest.approx(WALL, abs=1e-6)
    # an invalid tag (IV in the minute byte) gives no timestamp
    invalid = bytearray(WALL_CP56)
    invalid[2] |= 0x80
    (update,) = charger.send(asdu(30, 3, ioa(0x0021) + b"\x00" + bytes(invalid)))
    assert isinstance(update, PointUpdate) and update.timestamp is None


def test_foreign_common_address_is_never_applied_and_is_a_notice() -> None:
    charger = up()
    events = charger.send(asdu(1, 3, ioa(0x0021) + b"\x01", ca=5))
    assert events == []
    (notice,) = charger.session.notices()
    assert notice.kind == "foreign-ca"
    assert "common address 5" in notice.detail
    assert charger.session.is_up and charger.session.failure is None


def test_malformed_asdu_is_a_bad_asdu_notice_and_the_link_stays_up() -> None:
    charger = up()
    # M_ME_NC_1, SQ=1, declares 20 objects but carries 2
    objects = ioa(0x4001) + struct.pack("<fB", 1.0, 0) + struct.pack("<fB", 2.0, 0)
    assert charger.send(asdu(13, 3, objects, count=20, sq=True)) == []
    (notice,) = charger.session.notices()
    assert notice.kind == "bad-asdu"
    assert "at byte" in notice.detail
    assert charger.session.is_up and charger.session.failure is None
    # the next good ASDU is applied, and the bridge still acknowledges in sequence
    assert charger.send(asdu(1, 3, ioa(0x0022) + b"\x01")) == [
        PointUpdate(0x0022, "M_SP_NA_1", True)
    ]
    assert charger.session.failure is None


def test_private_type_130_is_an_unknown_type_notice() -> None:
    charger = up()
    assert charger.send(asdu(130, 3, ioa(0x0001) + b"\xaa\xbb")) == [
        RawAsdu(130, 3, 1, 1, False, ioa(0x0001) + b"\xaa\xbb", connection=1)
    ]
    (notice,) = charger.session.notices()
    assert notice.kind == "unknown-type"
    assert "type 130" in notice.detail
    assert charger.session.is_up


def test_notices_are_rate_limited_per_kind_with_the_suppressed_count() -> None:
    charger = up()
    foreign = asdu(1, 3, ioa(0x0021) + b"\x01", ca=7)
    for i in range(5):
        charger.send(foreign, now=1.0 + i)
    charger.send(asdu(130, 3, b"\x00"), now=6.0)  # another kind: not held back by the first
    notices = charger.session.notices()
    assert [(n.kind, n.suppressed) for n in notices] == [("foreign-ca", 0), ("unknown-type", 0)]
    charger.send(foreign, now=1.0 + NOTICE_INTERVAL - 0.5)  # still within the minute
    assert charger.session.notices() == []
    charger.send(foreign, now=1.0 + NOTICE_INTERVAL)
    (notice,) = charger.session.notices()
    assert notice == LinkNotice(notice.kind, notice.detail, 5)
    assert notice.kind == "foreign-ca"


# --- commands --------------------------------------------------------------------------------------


def test_direct_command_positive_act_con() -> None:
    charger = up()
    assert charger.session.command(command(1), 0.0) == []
    assert charger.read() == [asdu(45, 6, SC_ON)]
    assert confirmations(charger.send(asdu(45, 7, SC_ON))) == [(1, True)]


def test_direct_command_negative_act_con_p_n_bit() -> None:
    charger = up()
    charger.session.command(command(1), 0.0)
    charger.read()
    events = charger.send(asdu(45, 7, SC_ON, negative=True))
    assert confirmations(events) == [(1, False)]
    assert "negative" in events[0].detail  # type: ignore[union-attr]


@pytest.mark.parametrize("cot", [44, 45, 46, 47])
def test_unknown_type_cause_address_or_ioa_cot_44_to_47_is_negative(cot: int) -> None:
    charger = up()
    charger.session.command(command(1), 0.0)
    charger.read()
    events = charger.send(asdu(45, cot, SC_ON, negative=True))
    assert confirmations(events) == [(1, False)]
    assert f"cause {cot}" in events[0].detail  # type: ignore[union-attr]


def test_no_confirmation_within_command_timeout_is_negative() -> None:
    charger = up(command_timeout=5.0)
    charger.session.command(command(1), 0.0)
    charger.read()
    charger.ack()
    assert charger.session.next_deadline() is not None
    assert charger.session.handle_timer(4.9, WALL) == []
    events = charger.session.handle_timer(5.0, WALL)
    assert confirmations(events) == [(1, False)]
    assert "no confirmation within 5 s" in events[0].detail  # type: ignore[union-attr]
    # a late ACT_CON answers nothing: a notice, not a second confirmation
    assert charger.send(asdu(45, 7, SC_ON), now=6.0) == []
    assert [n.kind for n in charger.session.notices()] == ["unexpected-confirmation"]


def test_one_command_per_ioa_the_second_waits_for_the_first() -> None:
    charger = up()
    session = charger.session
    session.command(command(1, value=True), 0.0)
    session.command(command(2, value=False), 0.0)
    session.command(command(3, address=0x6011), 0.0)  # another IOA goes at once
    assert charger.read() == [asdu(45, 6, SC_ON), asdu(45, 6, ioa(0x6011) + b"\x01")]
    events = charger.send(asdu(45, 7, SC_ON))
    assert confirmations(events) == [(1, True)]
    off = ioa(0x6001) + b"\x00"
    assert charger.read() == [asdu(45, 6, off)]
    assert confirmations(charger.send(asdu(45, 7, off))) == [(2, True)]
    assert confirmations(charger.send(asdu(45, 7, ioa(0x6011) + b"\x01"))) == [(3, True)]


def test_a_command_whose_deadline_passed_while_waiting_is_not_sent() -> None:
    charger = up()
    session = charger.session
    session.command(command(1, value=True), 0.0)
    session.command(command(2, value=False, deadline=1.0), 0.0)
    charger.read()
    events = charger.send(asdu(45, 7, SC_ON), now=2.0)
    assert confirmations(events) == [(1, True), (2, False)]
    assert "not sent" in events[1].detail  # type: ignore[union-attr]
    assert charger.read() == []  # the stop never reached the charger


def test_select_and_execute_select_first_then_execute_on_its_act_con() -> None:
    charger = up()
    charger.session.command(command(1, select=True, qualifier="short_pulse"), 0.0)
    select = ioa(0x6001) + bytes([0x80 | 1 << 2 | 1])  # S/E select, QU 1, on
    execute = ioa(0x6001) + bytes([1 << 2 | 1])
    assert charger.read() == [asdu(45, 6, select)]
    assert charger.send(asdu(45, 7, select)) == []  # the select confirmed: no decision yet
    assert charger.read() == [asdu(45, 6, execute)]
    assert confirmations(charger.send(asdu(45, 7, execute))) == [(1, True)]


def test_select_refused_means_no_execute() -> None:
    charger = up()
    charger.session.command(command(1, select=True), 0.0)
    select = ioa(0x6001) + b"\x81"
    charger.read()
    assert confirmations(charger.send(asdu(45, 7, select, negative=True))) == [(1, False)]
    assert charger.read() == []


def test_expects_act_term_the_act_con_alone_decides_nothing() -> None:
    charger = up(expects_act_term=True)
    charger.session.command(command(1), 0.0)
    charger.read()
    assert charger.send(asdu(45, 7, SC_ON)) == []
    assert confirmations(charger.send(asdu(45, 10, SC_ON))) == [(1, True)]


def test_expects_act_term_a_negative_act_term_is_negative() -> None:
    charger = up(expects_act_term=True)
    charger.session.command(command(1), 0.0)
    charger.read()
    charger.send(asdu(45, 7, SC_ON))
    assert confirmations(charger.send(asdu(45, 10, SC_ON, negative=True))) == [(1, False)]


def test_reset_process_c_rp_na_1_bytes() -> None:
    charger = up()
    charger.session.command(command(1, address=0x6100, type_id=TypeId.C_RP_NA_1, value=1), 0.0)
    qrp = ioa(0x6100) + b"\x01"  # QRP 1: general reset of process
    assert charger.read() == [asdu(105, 6, qrp)]
    assert confirmations(charger.send(asdu(105, 7, qrp))) == [(1, True)]


def test_float_setpoint_c_se_nc_1_bytes() -> None:
    charger = up()
    charger.session.command(command(1, address=0x6202, type_id=TypeId.C_SE_NC_1, value=16.0), 0.0)
    setpoint = ioa(0x6202) + struct.pack("<fB", 16.0, 0)
    assert charger.read() == [asdu(50, 6, setpoint)]
    assert confirmations(charger.send(asdu(50, 7, setpoint))) == [(1, True)]


def test_double_command_c_dc_na_1_on_is_dcs_2() -> None:
    charger = up()
    charger.session.command(command(1, address=0x6002, type_id=TypeId.C_DC_NA_1, value=True), 0.0)
    assert charger.read() == [asdu(46, 6, ioa(0x6002) + b"\x02")]


def test_a_confirmation_of_another_type_for_the_ioa_decides_nothing() -> None:
    charger = up()
    charger.session.command(command(1), 0.0)
    charger.read()
    assert charger.send(asdu(46, 7, ioa(0x6001) + b"\x02")) == []
    assert [n.kind for n in charger.session.notices()] == ["unexpected-confirmation"]


# --- the link going away -------------------------------------------------------------------------------


def test_connection_lost_answers_every_command_negatively_and_reports_link_down() -> None:
    charger = up()
    session = charger.session
    session.command(command(1), 0.0)
    session.command(command(2, value=False), 0.0)  # waiting behind 1
    events = session.connection_lost(1.0, "peer closed")
    assert confirmations(events) == [(1, False), (2, False)]
    assert all("peer closed" in e.detail for e in events if isinstance(e, CommandConfirmed))
    assert events[-1] == LinkDown("peer closed")
    assert not session.is_up
    assert session.connection_lost(2.0, "again") == []  # LinkDown once
    # the next connection starts over: STARTDT act, LinkUp on its con
    charger2 = Charger(session)
    assert charger2.connect() == [LinkUp()]


def test_t1_without_startdt_con_is_a_failure_and_no_link_down() -> None:
    session = Session104(settings_for(), now=0.0)
    session.connection_made(0.0, WALL)
    assert session.data_to_send() == STARTDT_ACT
    assert session.next_deadline() == pytest.approx(15.0)
    assert session.handle_timer(15.0, WALL) == []
    assert session.failure is not None and session.failure.kind == "t1"
    assert session.connection_lost(15.0, "closed by the bridge") == []  # LinkUp never reported


def test_t1_on_an_unacknowledged_command_fails_the_link_link_down_carries_the_reason() -> None:
    charger = up(command_timeout=30.0)
    session = charger.session
    session.command(command(1), 0.0)
    charger.read()  # never acknowledged
    session.handle_timer(15.0, WALL)
    failure = session.failure
    assert failure is not None and failure.kind == "t1"
    assert session.receive_data(s_frame(charger.nr), 15.5, WALL) == []  # a failed link is inert
    events = session.connection_lost(16.0, "closed by the bridge")
    assert confirmations(events) == [(1, False)]
    assert events[-1] == LinkDown(failure.reason)


def test_testfr_act_from_the_charger_is_answered() -> None:
    charger = up()
    assert charger.session.receive_data(TESTFR_ACT, 1.0, WALL) == []
    assert charger.session.data_to_send() == TESTFR_CON


# --- totality --------------------------------------------------------------------------------------

_chunks = st.lists(st.binary(max_size=40), max_size=12)
_prefixes = st.lists(
    st.sampled_from(
        [
            STARTDT_CON,
            TESTFR_ACT,
            TESTFR_CON,
            i_frame(0, 0, asdu(1, 3, ioa(0x22) + b"\x01")),
            i_frame(0, 3, asdu(13, 20, ioa(0x4001) + b"\0\0\0\0\0", count=20, sq=True)),
            i_frame(0, 0, asdu(45, 7, SC_ON)),
            s_frame(1),
            b"\x68\x0e",
        ]
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(started=st.booleans(), prefix=_prefixes, chunks=_chunks)
def test_any_bytes_in_any_chunking_give_only_link_events(
    started: bool, prefix: list[bytes], chunks: list[bytes]
) -> None:
    session = Session104(settings_for(), now=0.0)
    session.connection_made(0.0, WALL)
    session.data_to_send()
    if started:
        assert session.receive_data(STARTDT_CON, 0.0, WALL) == [LinkUp()]
        session.data_to_send()
        session.command(command(1), 0.0)
    now = 0.0
    seen: list[object] = []
    for chunk in [*prefix, *chunks]:
        now += 0.5
        seen += session.receive_data(chunk, now, WALL)
        session.data_to_send()
        for notice in session.notices():
            assert isinstance(notice, LinkNotice)
    seen += session.handle_timer(now + 100.0, WALL)
    seen += session.connection_lost(now + 101.0, "closed")
    assert all(isinstance(event, EVENT_TYPES) for event in seen)
    answered = [e for e in seen if isinstance(e, CommandConfirmed)]
    assert len(answered) == (1 if started else 0)  # exactly once, whatever happened


def test_adopting_a_started_link_reports_link_up_at_once_and_the_asdus_read_before_it() -> None:
    """Dial-in: the listener's link is started already; LinkUp and the ASDUs it read come back from
    `connection_made` and `receive_asdu`, not with the charger's next bytes."""
    link = ApciLink(LinkParameters(), 0.0)
    link.start(0.0)
    link.data_to_send()
    link.receive_data(STARTDT_CON, 0.0)
    session = Session104(settings_for(), now=0.0)
    assert session.connection_made(0.1, WALL, link) == [LinkUp()]
    assert session.receive_asdu(asdu(1, 20, ioa(0x22) + b"\x01"), 0.1) == [
        PointUpdate(0x22, "M_SP_NA_1", True)
    ]
    assert [f[3][0] for f in frames(session.data_to_send())] == [0x67, 0x64, 0x65]


def test_an_adopted_dial_in_link_continues_with_the_tables_timers() -> None:
    """Identified under the listener's (most lenient) timers, the link then runs on the table's."""
    listener = LinkParameters(t1=60.0, t2=30.0, t3=120.0, k=20, w=10)
    link = ApciLink(listener, 0.0)
    link.start(0.0)
    link.data_to_send()
    link.receive_data(bytes.fromhex("68040b000000"), 0.1)  # STARTDT con
    session = Session104(settings_for(), now=0.0)
    events = session.connection_made(0.2, WALL, link)
    assert link.parameters == session.settings.link != listener
    assert any(isinstance(e, LinkUp) for e in events)


def test_a_private_type_reaches_the_core_as_a_raw_asdu() -> None:
    charger = up()
    payload = asdu(130, 3, ioa(0x7001) + bytes.fromhex("1234567890abcdef"))
    events = charger.send(payload)
    raw = [e for e in events if isinstance(e, RawAsdu)]
    objects = ioa(0x7001) + bytes.fromhex("1234567890abcdef")
    assert raw == [RawAsdu(130, 3, 1, 1, False, objects, connection=1)]


def test_one_common_address_per_connector_on_one_connection() -> None:
    """Connector 2 answers at common address 2: its data is applied, its commands go there, and the
    start-up clock sync and interrogations go to both addresses; a third address stays foreign."""
    settings = settings_for(other_addresses=frozenset({2}), address_of_ioa={0x6011: 2})
    session = Session104(settings, now=0.0)
    session.connection_made(0.0, WALL)
    session.data_to_send()
    assert session.receive_data(STARTDT_CON, 0.0, WALL) == [LinkUp()]
    sent = [payload for kind, _, _, payload in frames(session.data_to_send()) if kind == "I"]
    assert [(p[0], p[4]) for p in sent] == [
        (103, 1),
        (103, 2),
        (100, 1),
        (100, 2),
        (101, 1),
        (101, 2),
    ]
    charger = Charger(session)
    charger.nr = len(sent)
    charger.ack()
    assert charger.send(asdu(1, 3, ioa(0x0041) + b"\x01", ca=2)) == [
        PointUpdate(0x0041, "M_SP_NA_1", True)
    ]
    assert charger.send(asdu(1, 3, ioa(0x0041) + b"\x01", ca=3)) == []
    assert [n.kind for n in session.notices()] == ["foreign-ca"]
    session.command(command(1, 0x6011), 0.0)
    session.command(command(2, 0x6001), 0.0)
    assert charger.read() == [
        asdu(45, 6, ioa(0x6011) + b"\x01", ca=2),
        asdu(45, 6, SC_ON),
    ]


def test_an_answer_goes_only_on_the_connection_its_request_came_on() -> None:
    """A settlement acknowledgement held while the store wrote must not reach the charger's next
    connection: it names no record, and the charger resends its record there anyway."""
    charger = up()
    (raw,) = charger.send(asdu(132, 3, ioa(0x7101) + b"\x00"))
    assert isinstance(raw, RawAsdu) and raw.connection == 1
    answer = Send104Private(133, 7, ioa(0x7101) + b"\x00", connection=raw.connection)
    charger.session.connection_lost(1.0, "peer closed")
    again = Charger(charger.session)
    again.connect()
    again.read()
    assert charger.session.send_private(answer, 2.0) is False
    assert again.read() == []
    fresh = Send104Private(133, 7, ioa(0x7101) + b"\x00", connection=charger.session.connection)
    assert charger.session.send_private(fresh, 2.0) is True
    assert again.read() == [asdu(133, 7, ioa(0x7101) + b"\x00")]
