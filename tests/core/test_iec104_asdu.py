"""The IEC 104 ASDU codec (bridge.stations.iec104.asdu): round trips, totality, captured frames, a peer codec.

The per-type element table below is written from IEC 60870-5-101 §7.2.6/§7.3, not copied from the
module, so the round trip and the peer tests check the codec against the standard's layouts.
"""

from __future__ import annotations

import datetime
import json
import math
import struct
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.stations.iec104.asdu import (
    KNOWN_TYPES,
    STANDARD,
    TYPE_IDS,
    TYPE_NAMES,
    Asdu,
    AsduError,
    AsduFormat,
    Cp24,
    Cp56,
    InfoObject,
    cp56_from_epoch,
    cp56_to_epoch,
    decode_asdu,
    encode_asdu,
    single_point_reader,
)

FRAMES = Path(__file__).resolve().parents[1] / "data" / "iec104-frames.jsonl"
UTC = datetime.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")

FORMATS = [AsduFormat(c, a, i) for c in (1, 2) for a in (1, 2) for i in (1, 2, 3)]

# ------------------------------------------------------------------------------ the element table
bools = st.booleans()
quality_siq = st.integers(0, 15).map(lambda q: q << 4)  # IV NT SB BL; bits 1..3 reserved
qds = st.integers(0, 255)
bcr_quality = st.integers(0, 7).map(lambda q: q << 5)  # IV CA CY
normalized = st.integers(-32768, 32767).map(lambda n: n / 32768)
int16 = st.integers(-32768, 32767)
float32 = st.floats(width=32, allow_nan=False)
command_qualifier = st.integers(0, 63).map(lambda q: q << 2)  # QU bits 2..6, S/E bit 7
byte = st.integers(0, 255)
zero = st.just(0)
none = st.just(None)

# name: (value, quality, qualifier, time tag "" | "cp24" | "cp56")
ELEMENTS: dict[str, tuple[Any, Any, Any, str]] = {}


def _time_of(name: str) -> str:
    """CP24 on the 101-only M_*_TA_1 / M_ME_TB_1 / M_ME_TC_1, CP56 on M_*_TB..TF_1, C_*_T*_1, C_CS."""
    if name.startswith("C_"):
        return "cp56" if name[5] == "T" or name == "C_CS_NA_1" else ""
    if name[5:7] == "TA" or name in ("M_ME_TB_1", "M_ME_TC_1"):
        return "cp24"
    return "cp56" if name[5:7] in ("TB", "TD", "TE", "TF") else ""


def _element(names: str, value: Any, quality: Any, qualifier: Any) -> None:
    for name in names.split():
        ELEMENTS[name] = (value, quality, qualifier, _time_of(name))


_element("M_SP_NA_1 M_SP_TA_1 M_SP_TB_1", bools, quality_siq, zero)
_element("M_DP_NA_1 M_DP_TA_1 M_DP_TB_1", st.integers(0, 3), quality_siq, zero)
_element("M_ST_NA_1 M_ST_TA_1 M_ST_TB_1", st.integers(-64, 63), qds, st.integers(0, 1))
_element("M_BO_NA_1 M_BO_TA_1 M_BO_TB_1", st.integers(0, 2**32 - 1), qds, zero)
_element("M_ME_NA_1 M_ME_TA_1 M_ME_TD_1", normalized, qds, zero)
_element("M_ME_NB_1 M_ME_TB_1 M_ME_TE_1", int16, qds, zero)
_element("M_ME_NC_1 M_ME_TC_1 M_ME_TF_1", float32, qds, zero)
_element(
    "M_IT_NA_1 M_IT_TA_1 M_IT_TB_1",
    st.integers(-(2**31), 2**31 - 1),
    bcr_quality,
    st.integers(0, 31),
)
_element("M_ME_ND_1", normalized, zero, zero)
_element("C_SC_NA_1 C_SC_TA_1", bools, zero, command_qualifier)
_element("C_DC_NA_1 C_DC_TA_1 C_RC_NA_1 C_RC_TA_1", st.integers(0, 3), zero, command_qualifier)
_element("C_SE_NA_1 C_SE_TA_1", normalized, zero, byte)
_element("C_SE_NB_1 C_SE_TB_1", int16, zero, byte)
_element("C_SE_NC_1 C_SE_TC_1", float32, zero, byte)
_element("M_EI_NA_1 C_IC_NA_1 C_CI_NA_1 C_RP_NA_1", none, zero, byte)
_element("C_RD_NA_1 C_CS_NA_1", none, zero, zero)
_element("C_TS_NA_1 C_TS_TA_1", st.integers(0, 0xFFFF), zero, zero)

REQUIRED = [
    "M_SP_NA_1",
    "M_DP_NA_1",
    "M_ST_NA_1",
    "M_BO_NA_1",
    "M_ME_NA_1",
    "M_ME_NB_1",
    "M_ME_NC_1",
    "M_IT_NA_1",
    "M_ME_ND_1",
    "M_SP_TB_1",
    "M_DP_TB_1",
    "M_ST_TB_1",
    "M_BO_TB_1",
    "M_ME_TD_1",
    "M_ME_TE_1",
    "M_ME_TF_1",
    "M_IT_TB_1",
    "C_SC_NA_1",
    "C_DC_NA_1",
    "C_RC_NA_1",
    "C_SE_NA_1",
    "C_SE_NB_1",
    "C_SE_NC_1",
    "C_SC_TA_1",
    "C_DC_TA_1",
    "C_RC_TA_1",
    "C_SE_TA_1",
    "C_SE_TB_1",
    "C_SE_TC_1",
    "M_EI_NA_1",
    "C_IC_NA_1",
    "C_CI_NA_1",
    "C_CS_NA_1",
    "C_RP_NA_1",
    "C_TS_TA_1",
    "M_SP_TA_1",
    "M_DP_TA_1",
    "M_ME_TA_1",
    "M_ME_TB_1",
    "M_ME_TC_1",
    "M_IT_TA_1",
]

cp56 = st.builds(
    Cp56,
    st.integers(0, 0xFFFF),
    st.integers(0, 63),
    st.integers(0, 31),
    st.integers(0, 31),
    st.integers(0, 15),
    st.integers(0, 127),
    st.integers(0, 7),
    bools,
    bools,
    bools,
)
cp24 = st.builds(Cp24, st.integers(0, 0xFFFF), st.integers(0, 63), bools, bools)
TIMES = {"": none, "cp24": cp24, "cp56": cp56}
formats = st.sampled_from(FORMATS)


def test_type_table_matches_the_standard() -> None:
    assert TYPE_IDS["M_SP_NA_1"] == 1
    assert TYPE_IDS["M_ME_NC_1"] == 13
    assert TYPE_IDS["M_ME_TF_1"] == 36
    assert TYPE_IDS["C_SE_TC_1"] == 63
    assert TYPE_IDS["M_EI_NA_1"] == 70
    assert TYPE_IDS["C_CS_NA_1"] == 103
    assert TYPE_IDS["C_TS_TA_1"] == 107
    assert set(REQUIRED) <= set(TYPE_IDS)
    assert set(ELEMENTS) == set(TYPE_IDS)
    assert {TYPE_NAMES[t] for t in KNOWN_TYPES} == set(TYPE_IDS)
    assert all(TYPE_IDS[TYPE_NAMES[t]] == t for t in KNOWN_TYPES)


@st.composite
def asdus(draw: st.DrawFn, fmt: AsduFormat, name: str | None = None) -> Asdu:
    name = name or draw(st.sampled_from(sorted(ELEMENTS)))
    value, quality, qualifier, time = ELEMENTS[name]
    max_ioa = (1 << (8 * fmt.ioa_size)) - 1
    count = draw(st.integers(1, 127) if draw(st.integers(0, 9)) == 0 else st.integers(1, 8))
    sequence = draw(bools)
    if sequence:
        first = draw(st.integers(0, max_ioa - count + 1))
        ioas = list(range(first, first + count))
    else:
        ioas = draw(st.lists(st.integers(0, max_ioa), min_size=count, max_size=count))
    objects = tuple(
        InfoObject(ioa, draw(value), draw(quality), draw(TIMES[time]), draw(qualifier))
        for ioa in ioas
    )
    return Asdu(
        TYPE_IDS[name],
        draw(st.integers(0, 63)),
        draw(st.integers(0, (1 << (8 * fmt.ca_size)) - 1)),
        objects,
        sequence,
        draw(bools),
        draw(bools),
        draw(st.integers(0, 255)) if fmt.cot_size == 2 else 0,
    )


@st.composite
def raw_asdus(draw: st.DrawFn, fmt: AsduFormat) -> Asdu:
    return Asdu(
        draw(st.integers(0, 255).filter(lambda t: t not in KNOWN_TYPES)),
        draw(st.integers(0, 63)),
        draw(st.integers(0, (1 << (8 * fmt.ca_size)) - 1)),
        (),
        draw(bools),
        draw(bools),
        draw(bools),
        draw(st.integers(0, 255)) if fmt.cot_size == 2 else 0,
        draw(st.binary(max_size=240)),
        draw(st.integers(1, 127)),
    )


@st.composite
def any_asdu(draw: st.DrawFn) -> tuple[AsduFormat, Asdu]:
    fmt = draw(formats)
    return fmt, draw(st.one_of(asdus(fmt), raw_asdus(fmt)))


# ------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", sorted(ELEMENTS))
@given(data=st.data())
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_every_type_every_format(name: str, data: st.DataObject) -> None:
    fmt = data.draw(formats)
    asdu = data.draw(asdus(fmt, name))
    wire = encode_asdu(asdu, fmt)
    assert decode_asdu(wire, fmt) == asdu
    assert encode_asdu(decode_asdu(wire, fmt), fmt) == wire  # type: ignore[arg-type]


@given(data=st.data())
def test_round_trip_raw_asdus_of_unknown_and_private_types(data: st.DataObject) -> None:
    fmt = data.draw(formats)
    asdu = data.draw(raw_asdus(fmt))
    wire = encode_asdu(asdu, fmt)
    assert wire[0] == asdu.type_id
    assert decode_asdu(wire, fmt) == asdu


def test_standard_format_is_2_2_3() -> None:
    assert AsduFormat(2, 2, 3) == STANDARD
    wire = encode_asdu(Asdu(1, 3, 0x0201, (InfoObject(0x030405, True),), originator=7))
    assert wire == bytes([1, 1, 3, 7, 0x01, 0x02, 0x05, 0x04, 0x03, 0x01])


# ------------------------------------------------------------------------------------- totality
def _check_total(data: bytes, fmt: AsduFormat) -> None:
    result = decode_asdu(data, fmt)
    assert isinstance(result, Asdu | AsduError)
    if isinstance(result, AsduError):
        assert 0 <= result.offset <= len(data)
        assert result.what
        return
    # whatever decodes re-encodes, and that canonical form is stable
    canonical = encode_asdu(result, fmt)
    again = decode_asdu(canonical, fmt)
    assert isinstance(again, Asdu)
    assert encode_asdu(again, fmt) == canonical
    assert len(canonical) == len(data)


@given(data=st.binary(max_size=300), fmt=formats)
@settings(max_examples=500)
def test_decode_is_total_on_any_bytes(data: bytes, fmt: AsduFormat) -> None:
    _check_total(data, fmt)


@given(case=any_asdu(), data=st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_decode_is_total_on_mutated_asdus(
    case: tuple[AsduFormat, Asdu], data: st.DataObject
) -> None:
    fmt, asdu = case
    wire = bytearray(encode_asdu(asdu, fmt))
    how = data.draw(st.sampled_from(["truncate", "flip", "vsq", "extend", "type"]))
    if how == "truncate":
        del wire[data.draw(st.integers(0, len(wire))) :]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(wire) - 1))
            wire[position] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "vsq":
        wire[1] = data.draw(byte)  # SQ and count lies
    elif how == "extend":
        wire += data.draw(st.binary(min_size=1, max_size=20))
    else:
        wire[0] = data.draw(byte)
    _check_total(bytes(wire), fmt)


def _single_agrees(data: bytes, fmt: AsduFormat) -> bool:
    """The session's fast reader against the codec: the same point, or None (the codec's turn).
    True when the fast reader read it."""
    fast = single_point_reader(fmt)(data)
    if fast is None:
        return False
    asdu = decode_asdu(data, fmt)
    assert isinstance(asdu, Asdu), (data.hex(), asdu)
    assert len(asdu.objects) == 1 and not asdu.sequence
    (obj,) = asdu.objects
    assert obj.time is None and TYPE_NAMES[asdu.type_id].startswith("M_")
    assert fast[:3] + fast[4:] == (asdu.type_id, asdu.common_address, obj.ioa, obj.quality)
    assert type(fast[3]) is type(obj.value)
    assert fast[3] == obj.value or (math.isnan(fast[3]) and math.isnan(obj.value))
    return True


@given(data=st.binary(max_size=20), fmt=formats)
@settings(max_examples=500)
def test_single_point_reader_agrees_with_the_codec_on_any_bytes(
    data: bytes, fmt: AsduFormat
) -> None:
    _single_agrees(data, fmt)


@given(case=any_asdu(), data=st.data())
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_single_point_reader_agrees_with_the_codec_on_encoded_asdus(
    case: tuple[AsduFormat, Asdu], data: st.DataObject
) -> None:
    fmt, asdu = case
    wire = bytearray(encode_asdu(asdu, fmt))
    if data.draw(st.booleans()):
        wire[data.draw(st.integers(0, len(wire) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    _single_agrees(bytes(wire), fmt)


def test_single_point_reader_reads_the_common_types_by_hand() -> None:
    """Bytes spelled out (2-octet COT and CA, 3-octet IOA): what the fast reader takes, and not."""
    read = single_point_reader(STANDARD)
    head = bytes([1, 3, 0, 7, 0]).hex()  # VSQ 1, COT 3 (spontaneous), originator 0, CA 7
    cases = {
        "0d" + head + "014002" + struct.pack("<f", 2.5).hex() + "80": (13, 7, 0x024001, 2.5, 0x80),
        "01" + head + "210000" + "f1": (1, 7, 0x21, True, 0xF0),
        "03" + head + "220000" + "02": (3, 7, 0x22, 2, 0),
        "09" + head + "010000" + "00c0" + "00": (9, 7, 1, -0.5, 0),
        "0b" + head + "010000" + "ffff" + "01": (11, 7, 1, -1, 1),
        "0f" + head + "016400" + "10270000" + "e5": (15, 7, 0x6401, 10_000, 0xE0),
    }
    nan = read(bytes.fromhex("0d" + head + "014002" + "0000c07f" + "00"))
    assert nan is not None and math.isnan(nan[3])
    assert _single_agrees(bytes.fromhex("0d" + head + "014002" + "0000c07f" + "00"), STANDARD)
    for hex_, expected in cases.items():
        assert read(bytes.fromhex(hex_)) == expected
        assert _single_agrees(bytes.fromhex(hex_), STANDARD)
    m_me_nc = bytes.fromhex("0d" + head + "014002" + "00002040" + "00")
    assert read(m_me_nc[:-1]) is None  # short: the codec's error
    assert read(m_me_nc + b"\0") is None  # long: the codec's error
    assert read(bytes([13, 0x81]) + m_me_nc[2:]) is None  # SQ=1
    assert read(bytes([13, 2]) + m_me_nc[2:]) is None  # two objects declared
    assert read(bytes([14]) + m_me_nc[1:]) is None  # a time tag type
    assert read(bytes([45]) + m_me_nc[1:]) is None  # a command
    assert read(b"") is None


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_every_short_prefix_of_every_type_is_an_error_not_a_crash(fmt: AsduFormat) -> None:
    for type_id in range(256):
        for size in range(0, 20):
            _check_total(bytes([type_id, 0x81 if size % 2 else 0x02]) + bytes(range(size)), fmt)


# ---------------------------------------------------------------------------- regressions
def test_sq1_count_lie_is_an_error() -> None:
    """M_ME_NC_1, SQ=1, VSQ declares 20 objects, 2 on the wire (IEC 60870-5-101 §7.2.2)."""
    wire = bytes.fromhex("0d940300010001400000000000000000000000")
    result = decode_asdu(wire)
    assert isinstance(result, AsduError)
    assert "M_ME_NC_1" in result.what
    assert "SQ=1" in result.what
    assert "20 objects" in result.what
    assert "19 bytes" in result.what
    assert result.offset == len(wire)


def test_sq0_count_lie_is_an_error() -> None:
    result = decode_asdu(bytes.fromhex("01300300010028000001"))  # 48 declared, 1 present
    assert isinstance(result, AsduError)
    assert "48 objects" in result.what


def test_surplus_bytes_are_an_error_at_the_first_extra_byte() -> None:
    wire = bytes.fromhex("0101030001002800000100000000000000")
    result = decode_asdu(wire)
    assert result == AsduError(result.what, 10)  # type: ignore[union-attr]


def test_empty_asdu_is_an_error() -> None:
    assert decode_asdu(b"") == AsduError("empty ASDU", 0)


def test_short_data_unit_identifier_is_an_error() -> None:
    result = decode_asdu(bytes([13, 1, 3, 0, 1]))
    assert isinstance(result, AsduError)
    assert result.offset == 5


def test_vsq_count_zero_is_an_error() -> None:
    result = decode_asdu(bytes([13, 0x80, 3, 0, 1, 0]))
    assert isinstance(result, AsduError)
    assert result.offset == 1
    raw = decode_asdu(bytes([130, 0, 3, 0, 1, 0]))
    assert isinstance(raw, AsduError)


def test_sq1_past_the_last_ioa_is_an_error() -> None:
    # first IOA 0xFFFFFF, 2 single points: the second would be 0x1000000
    wire = bytes([1, 0x82, 3, 0, 1, 0, 0xFF, 0xFF, 0xFF, 1, 0])
    result = decode_asdu(wire)
    assert isinstance(result, AsduError)
    assert result.offset == 6
    ok = decode_asdu(bytes([1, 0x82, 3, 0, 1, 0, 0xFE, 0xFF, 0xFF, 1, 0]))
    assert isinstance(ok, Asdu)
    assert [o.ioa for o in ok.objects] == [0xFFFFFE, 0xFFFFFF]


def test_private_type_130_is_raw() -> None:
    wire = bytes([130, 0x83, 0x45, 9, 0x34, 0x12]) + b"private payload"
    result = decode_asdu(wire)
    assert result == Asdu(
        130, 5, 0x1234, (), True, True, False, 9, raw=b"private payload", raw_count=3
    )
    assert encode_asdu(result) == wire  # type: ignore[arg-type]


def test_nan_float_decodes() -> None:
    wire = bytes([13, 1, 3, 0, 1, 0, 1, 0, 0]) + struct.pack("<f", math.nan) + b"\x00"
    result = decode_asdu(wire)
    assert isinstance(result, Asdu)
    value = result.objects[0].value
    assert isinstance(value, float)
    assert math.isnan(value)
    assert encode_asdu(result) == wire


def test_reserved_bits_are_ignored_and_sent_as_zero() -> None:
    # SIQ 0x0F: SPI on, reserved bits 1..3 set
    result = decode_asdu(bytes([1, 1, 3, 0, 1, 0, 1, 0, 0, 0x0F]))
    assert isinstance(result, Asdu)
    assert result.objects[0] == InfoObject(1, True, 0)
    assert encode_asdu(result)[-1] == 0x01


def test_element_mappings_by_hand() -> None:
    # M_ST_NA_1: VTI 0xC1 = transient, value -63; QDS 0x81
    st_ = decode_asdu(bytes([5, 1, 3, 0, 1, 0, 1, 0, 0, 0xC1, 0x81]))
    assert st_.objects == (InfoObject(1, -63, 0x81, None, 1),)  # type: ignore[union-attr]
    # M_IT_NA_1: counter -2, BCR byte 0xA5 = IV, CY, sequence 5
    it = decode_asdu(bytes([15, 1, 3, 0, 1, 0, 1, 0, 0]) + struct.pack("<iB", -2, 0xA5))
    assert it.objects == (InfoObject(1, -2, 0xA0, None, 5),)  # type: ignore[union-attr]
    # M_ME_NA_1: 0x8000 = -1.0, QDS 0
    na = decode_asdu(bytes([9, 1, 3, 0, 1, 0, 1, 0, 0, 0x00, 0x80, 0]))
    assert na.objects == (InfoObject(1, -1.0, 0),)  # type: ignore[union-attr]
    # C_DC_NA_1: DCO 0x86 = select, QU 1, DCS 2
    dc = decode_asdu(bytes([46, 1, 6, 0, 1, 0, 1, 0, 0, 0x86]))
    assert dc.objects == (InfoObject(1, 2, 0, None, 0x84),)  # type: ignore[union-attr]


# -------------------------------------------------------------------------------- encoding errors
def _one(type_id: int, **fields: Any) -> Asdu:
    return Asdu(type_id, 6, 1, (InfoObject(**{"ioa": 1, **fields}),))


CP = Cp56(0, 0, 0, 1, 1, 26)


@pytest.mark.parametrize(
    "asdu",
    [
        Asdu(13, 3, 1, ()),
        Asdu(13, 3, 1, tuple(InfoObject(i, 0.0) for i in range(128))),
        Asdu(13, 3, 1, (InfoObject(1, 0.0), InfoObject(3, 0.0)), sequence=True),
        Asdu(13, 64, 1, (InfoObject(1, 0.0),)),
        Asdu(13, 3, 0x10000, (InfoObject(1, 0.0),)),
        Asdu(13, 3, 1, (InfoObject(1 << 24, 0.0),)),
        Asdu(13, 3, 1, (InfoObject(1, 0.0),), raw=b"x"),
        Asdu(130, 3, 1, (InfoObject(1, 0.0),), raw_count=1),
        Asdu(130, 3, 1, raw=b"x"),
        Asdu(256, 3, 1, raw=b"x", raw_count=1),
        _one(1, value=2),
        _one(1, value=True, quality=0x01),
        _one(1, value=True, qualifier=1),
        _one(1, value=True, time=CP),
        _one(3, value=4),
        _one(5, value=64),
        _one(5, value=0, qualifier=2),
        _one(9, value=1.0),
        _one(9, value=math.nan),
        _one(9, value=math.inf),
        _one(11, value=1.5),
        _one(11, value=40000),
        _one(13, value=1e39),
        _one(13, value="1"),
        _one(13, value=None),
        _one(15, value=2**31),
        _one(15, value=0, quality=0x10),
        _one(15, value=0, qualifier=32),
        _one(21, value=0.5, quality=0x80),
        _one(30, value=True),
        _one(30, value=True, time=Cp24(0, 0)),
        _one(2, value=True, time=CP),
        _one(30, value=True, time=CP._replace(month=16)),
        _one(45, value=True, qualifier=0x01),
        _one(45, value=True, quality=0x80),
        _one(48, value=0.5, qualifier=256),
        _one(100, value=1, qualifier=20),
        _one(100, qualifier=256),
        _one(103),
        _one(107, value=0x10000, time=CP),
    ],
)
def test_encode_refuses_what_it_cannot_encode(asdu: Asdu) -> None:
    with pytest.raises(ValueError):
        encode_asdu(asdu)


def test_originator_needs_a_two_byte_cot() -> None:
    asdu = Asdu(1, 3, 1, (InfoObject(1, True),), originator=5)
    with pytest.raises(ValueError, match="originator"):
        encode_asdu(asdu, AsduFormat(cot_size=1))


def test_invalid_format_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="format"):
        decode_asdu(b"\x01", AsduFormat(3, 2, 3))
    with pytest.raises(ValueError, match="format"):
        encode_asdu(Asdu(1, 3, 1, (InfoObject(1, True),)), AsduFormat(2, 2, 4))


def test_normalized_values_round_to_the_nearest_step() -> None:
    wire = encode_asdu(_one(9, value=0.1))
    assert decode_asdu(wire).objects[0].value == round(0.1 * 32768) / 32768  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- captured frames
def _frames() -> list[dict[str, Any]]:
    lines = FRAMES.read_text(encoding="utf-8").splitlines()
    frames = [json.loads(line) for line in lines if line.strip()]
    return [f for f in frames if f["tshark"].get("type") == "0x00000000"]


def _list(field: Any) -> list[str]:
    return field if isinstance(field, list) else [field]


def _bits(
    fields: dict[str, Any], prefix: str, byte_values: list[int], names: dict[str, int]
) -> None:
    for suffix, shift in names.items():
        if f"{prefix}.{suffix}" in fields:
            expected = [int(v) for v in _list(fields[f"{prefix}.{suffix}"])]
            assert [(b >> shift) & 1 for b in byte_values] == expected, f"{prefix}.{suffix}"


def _check_cp56(tag: Cp56 | Cp24 | None, t: dict[str, Any]) -> None:
    assert isinstance(tag, Cp56)
    assert tag.milliseconds == int(t["cp56time.ms"])
    assert tag.minute == int(t["cp56time.min"])
    assert tag.hour == int(t["cp56time.hour"])
    assert tag.day == int(t["cp56time.day"])
    assert tag.month == int(t["cp56time.month"])
    assert tag.year == int(t["cp56time.year"])
    assert tag.weekday == int(t["cp56time.dow"])
    assert tag.invalid == (t["cp56time.iv"] == "1")
    assert tag.summer == (t["cp56time.su"] == "1")
    assert tag.substituted == (t["cp56time.gen"] == "1")
    # tshark prints the tag read as UTC: "Dec  7, 2026 06:44:34.217000000 UTC"
    text = " ".join(t["cp56time"].split())
    shown = datetime.datetime.strptime(text[:-7], "%b %d, %Y %H:%M:%S.%f").replace(tzinfo=UTC)
    assert cp56_to_epoch(tag, UTC) == pytest.approx(shown.timestamp(), abs=1e-6)


def _check_against_tshark(asdu: Asdu, t: dict[str, Any]) -> None:
    assert asdu.type_id == int(t["typeid"])
    assert asdu.sequence == (t["sq"] == "1")
    assert (asdu.raw_count or len(asdu.objects)) == int(t["numix"])
    assert asdu.cot == int(t["causetx"])
    assert asdu.negative == (t["nega"] == "1")
    assert asdu.test == (t["test"] == "1")
    assert asdu.originator == int(t["oa"])
    assert asdu.common_address == int(t["addr"])
    ioas = [int(i) for i in _list(t["ioa"])]
    if "rawdata" in t:
        assert asdu.objects == ()
        assert asdu.raw[:3] == ioas[0].to_bytes(3, "little")
        assert asdu.raw[3:] == bytes.fromhex(t["rawdata"].replace(":", ""))
        return
    objects = asdu.objects
    assert [o.ioa for o in objects] == ioas
    flags = {"iv": 7, "nt": 6, "sb": 5, "bl": 4}
    if "siq" in t:
        wire = [int(o.value) | o.quality for o in objects]  # type: ignore[arg-type]
        assert wire == [int(v, 16) for v in _list(t["siq"])]
        _bits(t, "siq", wire, {**flags, "spi": 0})
    if "diq" in t:
        wire = [o.value | o.quality for o in objects]  # type: ignore[operator]
        assert wire == [int(v, 16) for v in _list(t["diq"])]
        assert [o.value for o in objects] == [int(v) for v in _list(t["diq.dpi"])]
        _bits(t, "diq", wire, flags)
    if "qds" in t:
        assert [o.quality for o in objects] == [int(v, 16) for v in _list(t["qds"])]
        _bits(t, "qds", [o.quality for o in objects], {**flags, "ov": 0})
    if "float" in t:
        for o, v in zip(objects, _list(t["float"]), strict=True):
            assert o.value == pytest.approx(float(v), rel=1e-6)
    if "bcr.count" in t:
        assert [o.value for o in objects] == [int(v) for v in _list(t["bcr.count"])]
        assert [o.qualifier for o in objects] == [int(v) for v in _list(t["bcr.sq"])]
        _bits(t, "bcr", [o.quality for o in objects], {"iv": 7, "ca": 6, "cy": 5})
    if "sco" in t:
        wire = [int(o.value) | o.qualifier for o in objects]  # type: ignore[arg-type]
        assert wire == [int(v, 16) for v in _list(t["sco"])]
        assert [int(o.value) for o in objects] == [int(v) for v in _list(t["sco.on"])]  # type: ignore[arg-type]
        assert [(o.qualifier >> 2) & 31 for o in objects] == [int(v) for v in _list(t["sco.qu"])]
        assert [o.qualifier >> 7 for o in objects] == [int(v) for v in _list(t["sco.se"])]
    if "qos" in t:
        assert [o.qualifier for o in objects] == [int(v, 16) for v in _list(t["qos"])]
        assert [o.qualifier & 127 for o in objects] == [int(v) for v in _list(t["qos.ql"])]
        assert [o.qualifier >> 7 for o in objects] == [int(v) for v in _list(t["qos.se"])]
    if "qoi" in t:
        assert [o.qualifier for o in objects] == [int(v) for v in _list(t["qoi"])]
    if "qcc" in t:
        assert [o.qualifier for o in objects] == [int(v, 16) for v in _list(t["qcc"])]
        assert [o.qualifier & 63 for o in objects] == [int(v) for v in _list(t["rqt"])]
        assert [o.qualifier >> 6 for o in objects] == [int(v) for v in _list(t["frz"])]
    if "cp56time" in t:
        assert len(objects) == 1
        _check_cp56(objects[0].time, t)


def test_captured_frames_file_has_what_we_cover() -> None:
    frames = _frames()
    assert len(frames) > 200
    types = {int(f["tshark"]["typeid"]) for f in frames}
    assert {1, 3, 13, 15, 30, 36, 37, 45, 50, 100, 101, 103} <= types
    assert any(f["tshark"]["sq"] == "1" for f in frames)
    assert any("rawdata" in f["tshark"] for f in frames)


@pytest.mark.parametrize("frame", _frames(), ids=lambda f: f["hex"][:40])
def test_captured_frame_matches_tshark(frame: dict[str, Any]) -> None:
    apdu = bytes.fromhex(frame["hex"])
    assert apdu[0] == 0x68
    assert apdu[1] == len(apdu) - 2
    data = apdu[6:]
    result = decode_asdu(data)
    t = frame["tshark"]
    if frame.get("malformed") or "malformed" in t:
        # tshark flags these too; it decodes what fits, we refuse the whole ASDU
        assert isinstance(result, AsduError), result
        assert 0 <= result.offset <= len(data)
        return
    assert isinstance(result, Asdu), result
    _check_against_tshark(result, t)
    assert encode_asdu(result) == data


# ------------------------------------------------------------------------ scapy as an independent peer
@pytest.fixture(scope="module")
def scapy104() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scapy.contrib.scada.iec104 as module
    return module


APCI = bytes([0x68, 0, 0, 0, 0, 0])


def _apdu(asdu: bytes) -> bytes:
    return bytes([0x68, len(asdu) + 4, 0, 0, 0, 0]) + asdu


def _scapy_frame(s: ModuleType, frame: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sequence = frame[7] & 0x80
        cls = s.IEC104_I_Message_SeqIOA if sequence else s.IEC104_I_Message_SingleIOA
        return cls(frame)


def _scapy_time(io: Any) -> Cp56:
    return Cp56(
        io.sec_milli,
        io.minutes,
        io.hours,
        io.day_of_month,
        io.month,
        io.year,
        io.weekday,
        bool(io.iv_time),
        bool(io.su),
        bool(io.gen),
    )


def _time_fields(tag: Cp56) -> dict[str, Any]:
    return {
        "sec_milli": tag.milliseconds,
        "minutes": tag.minute,
        "hours": tag.hour,
        "day_of_month": tag.day,
        "month": tag.month,
        "year": tag.year,
        "weekday": tag.weekday,
        "iv_time": int(tag.invalid),
        "su": int(tag.summer),
        "gen": int(tag.substituted),
    }


def _qds_fields(q: int) -> dict[str, int]:
    return {"iv": q >> 7 & 1, "nt": q >> 6 & 1, "sb": q >> 5 & 1, "bl": q >> 4 & 1}


def test_scapy_builds_we_decode(scapy104: ModuleType) -> None:
    s = scapy104
    tag = Cp56(24722, 55, 6, 7, 12, 26, 1, False, True, False)
    cases: list[tuple[Any, list[InfoObject]]] = [
        (
            s.IEC104_I_Message_SingleIOA(
                io=[
                    s.IEC104_IO_M_ME_NC_1_IOA(information_object_address=5, scaled_value=1.5, ov=1),
                    s.IEC104_IO_M_ME_NC_1_IOA(
                        information_object_address=70000, scaled_value=-2.0, iv=1
                    ),
                ],
                cot=3,
                common_asdu_address=7,
                origin_address=9,
            ),
            [InfoObject(5, 1.5, 0x01), InfoObject(70000, -2.0, 0x80)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[s.IEC104_IO_M_SP_NA_1_IOA(information_object_address=33, spi_value=1, nt=1)],
                cot=20,
                common_asdu_address=1,
            ),
            [InfoObject(33, True, 0x40)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[s.IEC104_IO_M_DP_NA_1_IOA(information_object_address=37, dpi_value=2, bl=1)],
                cot=3,
                common_asdu_address=1,
            ),
            [InfoObject(37, 2, 0x10)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[
                    s.IEC104_IO_M_ST_NA_1_IOA(
                        information_object_address=8, value=-5, transient_state=1, sb=1
                    )
                ],
                cot=3,
                common_asdu_address=1,
            ),
            [InfoObject(8, -5, 0x20, None, 1)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[s.IEC104_IO_M_ME_NA_1_IOA(information_object_address=9, normed_value=-16384)],
                cot=3,
                common_asdu_address=1,
            ),
            [InfoObject(9, -0.5, 0)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[s.IEC104_IO_M_ME_NB_1_IOA(information_object_address=10, scaled_value=-1234)],
                cot=3,
                common_asdu_address=1,
            ),
            [InfoObject(10, -1234, 0)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[
                    s.IEC104_IO_M_IT_NA_1_IOA(
                        information_object_address=25601, counter_value=-7, sq=5, cy=1
                    )
                ],
                cot=37,
                common_asdu_address=1,
            ),
            [InfoObject(25601, -7, 0x20, None, 5)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[
                    s.IEC104_IO_M_ME_TF_1_IOA(
                        information_object_address=16385, scaled_value=401.0, **_time_fields(tag)
                    )
                ],
                cot=3,
                common_asdu_address=1,
            ),
            [InfoObject(16385, 401.0, 0, tag)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[
                    s.IEC104_IO_C_SC_NA_1_IOA(information_object_address=40, scs=1, s_or_e=1, qu=3)
                ],
                cot=6,
                common_asdu_address=1,
            ),
            [InfoObject(40, True, 0, None, 0x80 | 3 << 2)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[
                    s.IEC104_IO_C_SE_NC_1_IOA(
                        information_object_address=25090, scaled_value=32.0, action=1, ql=2
                    )
                ],
                cot=6,
                common_asdu_address=1,
            ),
            [InfoObject(25090, 32.0, 0, None, 0x82)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[s.IEC104_IO_C_IC_NA_1_IOA(information_object_address=0, qoi=20)],
                cot=6,
                common_asdu_address=1,
            ),
            [InfoObject(0, None, 0, None, 20)],
        ),
        (
            s.IEC104_I_Message_SingleIOA(
                io=[s.IEC104_IO_C_CS_NA_1_IOA(information_object_address=0, **_time_fields(tag))],
                cot=6,
                common_asdu_address=1,
            ),
            [InfoObject(0, None, 0, tag)],
        ),
        (
            s.IEC104_I_Message_SeqIOA(
                io=[
                    s.IEC104_IO_M_ME_NC_1(scaled_value=1.5),
                    s.IEC104_IO_M_ME_NC_1(scaled_value=2.5, iv=1),
                ],
                information_object_address=100,
                cot=20,
                common_asdu_address=1,
            ),
            [InfoObject(100, 1.5, 0), InfoObject(101, 2.5, 0x80)],
        ),
    ]
    for packet, objects in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = bytes(packet)
        result = decode_asdu(frame[6:])
        assert isinstance(result, Asdu), result
        assert result.type_id == packet.type_id
        assert result.cot == packet.cot
        assert result.common_address == packet.common_asdu_address
        assert result.originator == packet.origin_address
        assert result.sequence == bool(packet.sq)
        assert list(result.objects) == objects
        assert encode_asdu(result) == frame[6:]


@given(data=st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize(
    "name",
    [
        "M_SP_NA_1",
        "M_DP_NA_1",
        "M_ST_NA_1",
        "M_ME_NA_1",
        "M_ME_NB_1",
        "M_ME_NC_1",
        "M_IT_NA_1",
        "M_SP_TB_1",
        "M_ME_TF_1",
        "C_SC_NA_1",
        "C_DC_NA_1",
        "C_SE_NC_1",
        "C_IC_NA_1",
        "C_CS_NA_1",
        "C_TS_TA_1",
    ],
)
def test_we_encode_scapy_parses(scapy104: ModuleType, name: str, data: st.DataObject) -> None:
    asdu = data.draw(asdus(STANDARD, name).filter(lambda a: len(a.objects) <= 6))
    wire = encode_asdu(asdu)
    packet = _scapy_frame(scapy104, _apdu(wire))
    assert packet.type_id == asdu.type_id
    assert packet.num_io == len(asdu.objects)
    assert bool(packet.sq) == asdu.sequence
    assert packet.cot == asdu.cot
    assert bool(packet.ack) == asdu.negative  # scapy calls P/N "ack"
    assert bool(packet.test) == asdu.test
    assert packet.origin_address == asdu.originator
    assert packet.common_asdu_address == asdu.common_address
    assert len(packet.io) == len(asdu.objects)
    for n, (io, obj) in enumerate(zip(packet.io, asdu.objects, strict=True)):
        ioa = (
            packet.information_object_address + n
            if asdu.sequence
            else io.information_object_address
        )
        assert ioa == obj.ioa
        if name.startswith("M_SP"):
            assert io.spi_value == obj.value
        elif name.startswith("M_DP"):
            assert io.dpi_value == obj.value
        elif name.startswith("M_ST"):
            assert (io.value, io.transient_state) == (obj.value, obj.qualifier)
        elif name == "M_ME_NA_1":
            assert io.normed_value == obj.value  # scapy shows NVA / 32768
        elif name.startswith("M_IT"):
            assert (io.counter_value, io.sq) == (obj.value, obj.qualifier)
            assert (io.iv, io.ca, io.cy) == (
                obj.quality >> 7,
                obj.quality >> 6 & 1,
                obj.quality >> 5 & 1,
            )
        elif name in ("C_SC_NA_1", "C_DC_NA_1"):
            assert (io.s_or_e, io.qu) == (obj.qualifier >> 7, obj.qualifier >> 2 & 31)
            assert (io.scs if name == "C_SC_NA_1" else io.dcs) == obj.value
        elif name == "C_SE_NC_1":
            assert (io.action, io.ql) == (obj.qualifier >> 7, obj.qualifier & 127)
            assert io.scaled_value == obj.value
        elif name == "C_IC_NA_1":
            assert io.qoi == obj.qualifier
        elif name == "C_TS_TA_1":
            assert io.tsc == obj.value
        elif name != "C_CS_NA_1":  # M_ME_NB_1, M_ME_NC_1, M_ME_TF_1
            assert io.scaled_value == obj.value
        if name.startswith("M_") and not name.startswith("M_IT"):
            quality = obj.quality
            assert (io.iv, io.nt, io.sb, io.bl) == tuple(_qds_fields(quality).values())
        if obj.time is not None:
            assert isinstance(obj.time, Cp56)
            assert _scapy_time(io) == obj.time


# ------------------------------------------------------------------------------------ CP56 and zones
def _epoch(*fields: int, tz: datetime.tzinfo = UTC) -> float:
    return datetime.datetime(*fields, tzinfo=tz).timestamp()  # type: ignore[misc]


def test_cp56_shanghai_both_ways() -> None:
    instant = _epoch(2026, 12, 7, 6, 44, 34, 217000)
    tag = cp56_from_epoch(instant, SHANGHAI)
    assert tag == Cp56(34217, 44, 14, 7, 12, 26, weekday=1, invalid=False, summer=False)
    assert cp56_to_epoch(tag, SHANGHAI) == instant
    # the captured C_CS_NA_1 tag (06:44:34.217, 7 December 2026) read as Shanghai local time
    wire_tag = Cp56(34217, 44, 6, 7, 12, 26)
    assert cp56_to_epoch(wire_tag, SHANGHAI) == instant - 8 * 3600


def test_cp56_berlin_summer_sets_su() -> None:
    summer = _epoch(2026, 7, 1, 12, 0)
    tag = cp56_from_epoch(summer, BERLIN)
    assert (tag.hour, tag.summer, tag.weekday) == (14, True, 3)
    assert cp56_to_epoch(tag, BERLIN) == summer
    winter = _epoch(2026, 1, 15, 12, 0)
    tag = cp56_from_epoch(winter, BERLIN)
    assert (tag.hour, tag.summer, tag.weekday) == (13, False, 4)
    assert cp56_to_epoch(tag, BERLIN) == winter


def test_cp56_berlin_fold_hour_uses_su() -> None:
    """25 October 2026: 02:30 local happens at 00:30 UTC (CEST, SU) and again at 01:30 UTC (CET)."""
    first, second = _epoch(2026, 10, 25, 0, 30), _epoch(2026, 10, 25, 1, 30)
    tag1, tag2 = cp56_from_epoch(first, BERLIN), cp56_from_epoch(second, BERLIN)
    assert (tag1.hour, tag1.minute, tag1.summer) == (2, 30, True)
    assert (tag2.hour, tag2.minute, tag2.summer) == (2, 30, False)
    assert tag1._replace(summer=False) == tag2
    assert cp56_to_epoch(tag1, BERLIN) == first
    assert cp56_to_epoch(tag2, BERLIN) == second


def test_cp56_berlin_spring_gap_uses_su() -> None:
    """29 March 2026: 02:30 local never happens; SU says which offset the sender meant."""
    tag = Cp56(0, 30, 2, 29, 3, 26)
    assert cp56_to_epoch(tag, BERLIN) == _epoch(2026, 3, 29, 1, 30)  # read as CET
    assert cp56_to_epoch(tag._replace(summer=True), BERLIN) == _epoch(2026, 3, 29, 0, 30)


def test_cp56_su_outside_a_transition_does_not_move_the_instant() -> None:
    tag = Cp56(0, 0, 12, 15, 1, 26)
    assert cp56_to_epoch(tag._replace(summer=True), BERLIN) == cp56_to_epoch(tag, BERLIN)


@pytest.mark.parametrize(
    "tag",
    [
        Cp56(0, 0, 12, 1, 1, 26, invalid=True),
        Cp56(0, 0, 12, 1, 13, 26),
        Cp56(0, 0, 12, 0, 1, 26),
        Cp56(0, 0, 24, 1, 1, 26),
        Cp56(0, 60, 12, 1, 1, 26),
        Cp56(60000, 0, 12, 1, 1, 26),
        Cp56(0, 0, 12, 30, 2, 26),
        Cp56(0, 0, 12, 29, 2, 27),
        Cp56(0, 0, 12, 1, 1, 100),
        Cp56(0, 0, 12, 1, 0, 26),
    ],
)
def test_cp56_that_names_no_instant_is_none(tag: Cp56) -> None:
    assert cp56_to_epoch(tag, UTC) is None
    assert cp56_to_epoch(tag, BERLIN) is None


def test_cp56_leap_day_is_an_instant() -> None:
    assert cp56_to_epoch(Cp56(0, 0, 0, 29, 2, 28), UTC) == _epoch(2028, 2, 29)


@pytest.mark.parametrize(
    "epoch", [_epoch(1999, 12, 31, 23, 59), _epoch(2100, 1, 1, 12), math.nan, math.inf]
)
def test_cp56_from_epoch_outside_its_range_raises(epoch: float) -> None:
    with pytest.raises(ValueError):
        cp56_from_epoch(epoch, UTC)


def test_cp56_from_epoch_rounds_to_the_millisecond() -> None:
    tag = cp56_from_epoch(_epoch(2026, 1, 1, 0, 0, 59) + 0.9996, UTC)
    assert (tag.milliseconds, tag.minute) == (0, 1)


@given(
    ms=st.integers(int(_epoch(2000, 1, 2)) * 1000, int(_epoch(2099, 12, 30)) * 1000),
    zone=st.sampled_from([UTC, SHANGHAI, BERLIN]),
)
def test_cp56_round_trip_through_zones(ms: int, zone: datetime.tzinfo) -> None:
    epoch = ms / 1000
    tag = cp56_from_epoch(epoch, zone)
    assert cp56_to_epoch(tag, zone) == epoch
    local = datetime.datetime.fromtimestamp(epoch, zone)
    assert tag.weekday == local.isoweekday()
    assert tag.summer == bool(local.dst())
    # and through the wire
    asdu = Asdu(103, 6, 1, (InfoObject(0, time=tag),))
    assert decode_asdu(encode_asdu(asdu)) == asdu
