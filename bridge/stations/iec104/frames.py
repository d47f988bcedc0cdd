"""The language of a vendor's own frames: `registration:` and `private_asdus:` (pydantic models).

```yaml
registration:                       # sent by the charger on connect, before STARTDT
  start: "AA 55"
  length: {size: 1}                 # counts the payload
  fields:
    - {name: serial, type: ascii, size: rest}
  checksum: {rule: sum8, over: payload}
  id: serial                        # matched to a station's registration_id
  accepted: "AA 55 01 00"
  refused: "AA 55 01 01"
private_asdus:
  card_request:
    type: 130
    direction: in                   # charger → bridge
    cot: 3
    ioa: {base: 0x7001, stride: 1}  # per connector; or a fixed `ioa: 0x7000`
    fields:
      - {name: card, type: bcd, size: 8}
    meaning: {kind: authorize, id_token: card, id_token_type: Local, answer: card_answer}
```

Rules
- A field list is ordered; a field sits at `offset` (bytes from the start of the payload or of the
  object's data after the IOA) or, without one, right after the previous field. Sizes: fixed by the
  type (uint8 1 … cp56 7) or declared (`size`, required for bcd, ascii, raw); `size: rest` (the
  registration's last field only) takes what the length leaves.
- Per-key checks live here; everything that involves several keys (overlaps, sizes, field names and
  types a meaning needs, answers, code tables, the APDU limit, IOAs) is in `bridge.stations.iec104.frame_checks`.
- `meaning` is a union discriminated by `kind`: authorize, authorize_answer (in/out pairs with
  `answer`), settlement, settlement_ack, tariff. OCPP values are the OCPP 2.0.1 enumerations
  (IdTokenEnumType, AuthorizationStatusEnumType, ReasonEnumType), copied from the official schemas.
- Hex byte strings (`"AA 55"`) are pairs of hex digits, spaces optional between pairs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BeforeValidator, Discriminator, Field, Tag, WithJsonSchema, field_validator

from bridge.stations.iec104.conditions import Name, StrictModel
from bridge.stations.iec104.points import IOA, Description, Offset, choice
from bridge.stations.iec104.private import FIELD_TYPES, FieldType
from bridge.stations.iec104.registration import CHECKSUM_RULES
from bridge.stations.iec104.vocabulary import STOP_REASONS, StopReason

IdTokenType = Literal[
    "Central",
    "eMAID",
    "ISO14443",
    "ISO15693",
    "KeyCode",
    "Local",
    "MacAddress",
    "NoAuthorization",
]
ID_TOKEN_TYPES: Final[tuple[str, ...]] = get_args(IdTokenType)
AuthorizationStatus = Literal[
    "Accepted",
    "Blocked",
    "ConcurrentTx",
    "Expired",
    "Invalid",
    "NoCredit",
    "NotAllowedTypeEVSE",
    "NotAtThisLocation",
    "NotAtThisTime",
    "Unknown",
]
AUTHORIZATION_STATUSES: Final[tuple[str, ...]] = get_args(AuthorizationStatus)
MEANING_KINDS: Final = ("authorize", "authorize_answer", "settlement", "settlement_ack", "tariff")

_HEX_BYTES = re.compile(r"\s*([0-9A-Fa-f]{2}\s*)+")


def _hex_bytes(value: object) -> object:
    if isinstance(value, str) and not _HEX_BYTES.fullmatch(value):
        raise ValueError(f'{value!r} is not hex bytes: write pairs of hex digits, such as "AA 55"')
    return value


def hex_to_bytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


HexBytes = Annotated[
    str,
    BeforeValidator(_hex_bytes),
    WithJsonSchema({"type": "string", "pattern": r"^\s*([0-9A-Fa-f]{2}\s*)+$"}),
]
FieldTypeName = Annotated[FieldType, choice(FIELD_TYPES, "field type")]
IdTokenTypeName = Annotated[IdTokenType, choice(ID_TOKEN_TYPES, "id token type")]
StatusName = Annotated[AuthorizationStatus, choice(AUTHORIZATION_STATUSES, "authorization status")]
ReasonName = Annotated[StopReason, choice(STOP_REASONS, "stop reason")]
Endian = Literal["little", "big"]
ByteCount = Annotated[int, Field(ge=1, le=255)]


class FieldDef(StrictModel):
    """One field of a registration payload or a private ASDU's data."""

    name: Name = Field(description="how meanings and the registration's `id` name the field")
    type: FieldTypeName = Field(
        description="uint8, uint16, uint32, int8, int16, int32, float32, bcd, ascii, cp56 or raw"
    )
    size: ByteCount | Literal["rest"] | None = Field(
        None,
        description="bytes: required for bcd, ascii and raw (fixed by the other types); `rest`: what"
        " the registration's length leaves",
    )
    offset: Annotated[int, Field(ge=0, le=65535)] | None = Field(
        None, description="bytes from the start; default: right after the previous field"
    )
    endian: Endian = Field("little", description="byte order of a number: little or big")
    scale: float | None = Field(None, description="numbers: value = raw × scale")
    description: Description | None = None

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, scale: float | None) -> float | None:
        if scale == 0:
            raise ValueError("scale must not be 0")
        return scale


class LengthDef(StrictModel):
    size: Literal[1, 2] = Field(1, description="bytes of the length field")
    endian: Endian = Field("little", description="byte order of a 2-byte length")
    counts: Literal["payload", "payload_and_checksum", "frame"] = Field(
        "payload", description="what the length counts"
    )


class ChecksumDef(StrictModel):
    rule: Annotated[
        Literal["none", "sum8", "xor8", "crc16_modbus"], choice(CHECKSUM_RULES, "checksum rule")
    ] = Field(description="none, sum8, xor8 (1 byte) or crc16_modbus (2 bytes)")
    over: Literal["payload", "frame"] = Field(
        "payload", description="the payload, or the whole frame before the checksum"
    )
    endian: Endian = Field("little", description="byte order of a 2-byte checksum")


class RegistrationDef(StrictModel):
    """The frame a charger sends on connect before (or instead of) STARTDT, and the bridge's answers."""

    description: Description | None = None
    start: HexBytes = Field(description='the frame\'s first bytes, e.g. "AA 55"')
    length: LengthDef = Field(default_factory=LengthDef)
    fields: list[FieldDef] = Field(min_length=1, description="the payload's fields")
    checksum: ChecksumDef = Field(default_factory=lambda: ChecksumDef(rule="none"))
    id: Name = Field(description="the field whose value (as text) is the station's registration_id")
    accepted: HexBytes = Field(description="the answer to a known charger")
    refused: HexBytes = Field(description="the answer to an unknown charger")
    max_payload: int | None = Field(
        None, ge=1, le=65535, description="the longest payload accepted (default: 1024, or less)"
    )


class IoaBlock(StrictModel):
    """An IOA per connector: base + (n − 1) × stride."""

    base: IOA = Field(description="the IOA for connector 1")
    stride: Offset = Field(description="IOA distance between two connectors")


def _ioa_tag(value: Any) -> str:
    return "block" if isinstance(value, dict | IoaBlock) else "fixed"


PrivateIoa = Annotated[
    Annotated[IOA, Tag("fixed")] | Annotated[IoaBlock, Tag("block")], Discriminator(_ioa_tag)
]


class MeterDef(StrictModel):
    field: Name = Field(description="an integer field")
    wh_per_count: float = Field(gt=0, description="Wh per count, e.g. 10 for 0.01 kWh")


class AmountDef(StrictModel):
    field: Name = Field(description="a number field")
    scale: float = Field(1.0, gt=0, description="currency units per count, e.g. 0.01")


class StopReasonDef(StrictModel):
    field: Name = Field(description="an integer field")
    codes: dict[int, ReasonName] = Field(min_length=1, description="code → OCPP stoppedReason")
    default: ReasonName | None = Field(None, description="the reason of any other code")


class AuthorizeMeaning(StrictModel):
    kind: Literal["authorize"]
    id_token: Name = Field(description="the bcd or ascii field holding the id token")
    id_token_type: IdTokenTypeName = Field("Local", description="OCPP 2.0.1 IdTokenEnumType")
    answer: Name = Field(description="the out private ASDU (authorize_answer) that answers")
    offline: Literal["accept", "refuse"] = Field(
        "refuse", description="the answer while the CSMS is unreachable"
    )


class AuthorizeAnswerMeaning(StrictModel):
    kind: Literal["authorize_answer"]
    result: Name = Field(description="the integer field carrying the status code")
    codes: dict[StatusName, int] = Field(
        min_length=1, description="OCPP AuthorizationStatus → code, e.g. Accepted: 0"
    )
    default: int | None = Field(None, description="the code of any status not in `codes`")
    balance: Name | None = Field(
        None, description="a number field; sent as 0 (OCPP 2.0.1 has no balance)"
    )


class SettlementMeaning(StrictModel):
    kind: Literal["settlement"]
    id_token: Name = Field(description="the bcd or ascii field holding the id token")
    id_token_type: IdTokenTypeName = Field("Local", description="OCPP 2.0.1 IdTokenEnumType")
    started_at: Name = Field(description="a cp56 field")
    ended_at: Name = Field(description="a cp56 field")
    meter_start: MeterDef
    meter_stop: MeterDef
    amount: AmountDef | None = None
    stop_reason: StopReasonDef | None = None
    answer: Name = Field(description="the out private ASDU (settlement_ack) that acknowledges")
    answer_values: dict[Name, int | float | str] = Field(
        default_factory=dict, description="a value for every field of the answer, e.g. result: 0"
    )
    wins: Literal["record", "counters"] = Field(
        "record", description="whose meter values count when the record and the counters disagree"
    )


class SettlementAckMeaning(StrictModel):
    kind: Literal["settlement_ack"]
    result: Name = Field(description="the field carrying the acknowledgement's result")


class TariffMeaning(StrictModel):
    kind: Literal["tariff"]
    component: Annotated[str, Field(min_length=1, max_length=50)] = Field(
        description="the OCPP device-model component whose variables the CSMS sets"
    )
    variables: dict[Annotated[str, Field(min_length=1, max_length=50)], Name] = Field(
        min_length=1, description="variable name → field"
    )
    confirmation: Literal["act_con", "none"] = Field(
        "act_con", description="wait for the charger's ACT_CON, or not"
    )


Meaning = Annotated[
    AuthorizeMeaning
    | AuthorizeAnswerMeaning
    | SettlementMeaning
    | SettlementAckMeaning
    | TariffMeaning,
    Field(discriminator="kind"),
]
AnyMeaning = (
    AuthorizeMeaning
    | AuthorizeAnswerMeaning
    | SettlementMeaning
    | SettlementAckMeaning
    | TariffMeaning
)
IN_MEANINGS: Final = ("authorize", "settlement")
OUT_MEANINGS: Final = ("authorize_answer", "settlement_ack", "tariff")


class PrivateAsduDef(StrictModel):
    """A private ASDU: one information object whose data is a layout of fields."""

    description: Description | None = None
    type: int = Field(ge=1, le=255, description="type id: 128..255, or a standard id no point uses")
    direction: Literal["in", "out"] = Field(
        description="in: charger → bridge; out: bridge → charger"
    )
    cot: int = Field(ge=1, le=63, description="cause of transmission")
    ioa: PrivateIoa = Field(description="a fixed IOA, or {base, stride} per connector")
    fields: list[FieldDef] = Field(min_length=1, description="the object's data after the IOA")
    meaning: Meaning
