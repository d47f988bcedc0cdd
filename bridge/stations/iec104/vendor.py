"""A vendor table's private ASDUs at work: card authorization, card sessions and settlement records.

The station core (`bridge.stations.iec104.core`) owns the transactions and the CSMS connection; this module
reads the charger's private ASDUs (`RawAsdu` events) by the table's layouts (`bridge.stations.iec104.private`),
keeps what cards did per connector, and tells the core what to do, as `Action`s it carries out in order.

Rules
- A private ASDU is found by (type id, IOA) in the table (`CompiledTable.private_in`); it must hold one
  information object. One the table does not declare, a short or malformed one (layout error: what, at
  which byte), or one from a connector the station does not have is a `Problem` (the core reports it,
  bounded), never a crash, and nothing else happens: a settlement record that cannot be read is not
  acknowledged, so the charger keeps it and sends it again.
- Card authorization (`authorize`): the card becomes an idToken of the table's type and is sent to the
  CSMS (`AuthorizeAtCsms`, with a context the core hands back through `authorize_answered`). The
  CSMS's `idTokenInfo.status` is answered with the table's answer ASDU and code. When the CSMS cannot
  answer (not registered, unreachable, no answer in time), the table's `offline` policy answers:
  accept (Accepted) or refuse (Unknown). Only the first answer counts.
- An accepted card on a connector without a transaction is that connector's next transaction's idToken
  for `CARD_VALIDITY` seconds (`card_for_start`: Started with trigger Authorized); the core stores it
  (`start_card`, `restore_start_card`) before the charger hears the answer, so a restart in between
  still starts that transaction with the card. An accepted card on a connector in a transaction is its
  stop card (`stop_card`: the Ended carries it, trigger
  StopAuthorized, stopped reason Local unless the settlement record says otherwise).
- Settlement records (`settlement`): decoded into a `Record` (meter values in Wh, amount scaled, stop
  reason from the code table, the card as idToken — none when the card field is empty or all zeros,
  as chargers send it for a session no card started — times read in the table's time zone) and handed to
  the core with the key that identifies the record (its IOA and bytes). A record whose key is among
  the last `SETTLED_KEPT` settled ones is a repeat (the acknowledgement was lost with the link): it is
  acknowledged again and changes nothing. The key is stored (table `meta`, key `settled`) in the same
  commit as the Ended the record produced, and the acknowledgement is an effect after that commit:
  the charger hears "stored" only once the record is durable. An Ended that went without its record
  (it did not come within `settlement_wait`) leaves a durable mark (meta `unsettled:<evse>`): the
  record that comes later, also after a restart, is reported as late and acknowledged, never taken
  for a session of its own — unless it names the transaction running on the connector (its meter
  start is that transaction's Begin register, its card the transaction's idToken): then it is that
  one's and ends it, and the mark waits on. An Ended that waits for its record is durable too (meta
  `ending:<evse>`, `Station104._keep_ending`): a bridge restarted meanwhile keeps that transaction
  ended, waits on for the record, and takes charging it then sees for a new transaction.
- The Ended a record makes is one commit (ledger, outbox, `settled`) and the acknowledgement follows
  it (`Station104._send_event`): a crash in between never leaves the Ended queued for the CSMS with
  its transaction still open.
- An answer goes only on the connection its request came on (`RawAsdu.connection` →
  `Send104Private.connection`): an acknowledgement held while the store wrote, whose connection
  dropped meanwhile, is not sent on the charger's next connection (it does not say which record it
  acknowledges; the charger sends the record again there and gets its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from bridge.stations.iec104.compiled import CompiledTable
from bridge.stations.iec104.private import (
    Authorize,
    AuthorizeAnswer,
    FieldValue,
    LayoutError,
    PrivateRule,
    Settlement,
    object_bytes,
    split_object,
)
from bridge.stations.iec104.southbound import RawAsdu, Send104Private
from bridge.timestamps import format_utc

CARD_VALIDITY: Final = 120.0  # seconds an accepted card waits for its session to start
SETTLED_KEPT: Final = 64  # settled record keys remembered, against repeats
SETTLED_KEY: Final = "settled"
CUSTOM_VENDOR: Final = "ocpp-bridge"


@dataclass(frozen=True, slots=True)
class AuthorizeAtCsms:
    evse: int | None
    id_token: dict[str, str]
    context: tuple[str, str, int | None, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """A private ASDU to send the charger now."""

    effect: Send104Private


@dataclass(frozen=True, slots=True)
class Record:
    """A settlement record, decoded."""

    evse: int
    key: str
    id_token: dict[str, str] | None
    started_at: float | None  # epoch seconds, None when the record's time is invalid
    ended_at: float | None
    meter_start_wh: float
    meter_stop_wh: float
    amount: float | None
    stop_reason: str
    record_wins: bool
    fields: dict[str, Any]  # every field, JSON-safe, for customData
    ack: Send104Private

    def custom_data(self) -> dict[str, Any]:
        """The record for TransactionEvent.customData (OCPP 2.0.1 CustomDataType)."""
        record = {name: value for name, value in self.fields.items()}
        record["meterStartWh"] = self.meter_start_wh
        record["meterStopWh"] = self.meter_stop_wh
        if self.amount is not None:
            record["amount"] = self.amount
        return {"vendorId": CUSTOM_VENDOR, "settlement": record}


@dataclass(frozen=True, slots=True)
class Settle:
    record: Record
    repeat: bool  # settled before: acknowledge again, change nothing


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    message: str


Action = AuthorizeAtCsms | Answer | Settle | Problem


@dataclass(slots=True)
class _Cards:
    start: tuple[dict[str, str], float] | None = None  # (idToken, valid until)
    stop: dict[str, str] | None = None


@dataclass(slots=True)
class VendorAsdus:
    table: CompiledTable
    zone: tzinfo
    settled: list[str] = field(default_factory=list)  # durable: meta[SETTLED_KEY]
    _cards: dict[int, _Cards] = field(default_factory=dict)
    # requests asked of the CSMS → the connection they came on
    _asked: dict[tuple[str, str, int | None, str], int] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.table.private_in)

    def expects_settlement(self, evse: int) -> bool:
        """The charger sends a settlement record for this connector's sessions."""
        return any(
            isinstance(rule.meaning, Settlement) and rule.connector_of(ioa) == evse
            for (_, ioa), rule in self.table.private_in.items()
        )

    # --- from the charger ---------------------------------------------------------------------------

    def received(
        self, event: RawAsdu, now: float, in_transaction: Mapping[int, bool]
    ) -> list[Action]:
        ioa_size = self.table.link.ioa_size
        split = split_object(event.objects, ioa_size)
        if isinstance(split, LayoutError):
            return [Problem("private-malformed", f"type {event.type_id}: {split.what}")]
        ioa, data = split
        rule = self.table.private_in.get((event.type_id, ioa))
        if rule is None:
            return [
                Problem(
                    "private-unknown",
                    f"type {event.type_id} at IOA 0x{ioa:04X} (COT {event.cot}) is not in the table",
                )
            ]
        if event.number != 1:
            return [
                Problem("private-malformed", f"{rule.name}: {event.number} objects, expected 1")
            ]
        evse = rule.connector_of(ioa)
        if evse is None and not rule.per_connector:  # a fixed IOA: the address says the connector
            evse = self.table.connector_at(event.common_address)
        values = rule.layout.decode(data, self.zone)
        if isinstance(values, LayoutError):
            return [
                Problem(
                    "private-malformed",
                    f"{rule.name}: {values.what} (at byte {values.offset} of its data)",
                )
            ]
        meaning = rule.meaning
        if isinstance(meaning, Authorize):
            return self._authorize(rule, meaning, evse, values, event.connection)
        if isinstance(meaning, Settlement):
            if evse is None:
                return [Problem("private-malformed", f"{rule.name}: no connector at 0x{ioa:04X}")]
            return self._settlement(rule, meaning, evse, ioa, data, values, event.connection)
        return [Problem("private-unexpected", f"{rule.name} is not sent by the charger")]

    def _authorize(
        self,
        rule: PrivateRule,
        meaning: Authorize,
        evse: int | None,
        values: Mapping[str, FieldValue],
        connection: int,
    ) -> list[Action]:
        token = _text(values.get(meaning.id_token))
        if not token:
            return [Problem("private-malformed", f"{rule.name}: empty {meaning.id_token}")]
        context = ("card-authorize", rule.name, evse, token)
        self._asked[context] = connection
        id_token = {"idToken": token[:36], "type": meaning.id_token_type}
        return [AuthorizeAtCsms(evse, id_token, context)]

    def authorize_answered(
        self, context: tuple[str, str, int | None, str], status: str | None, now: float,
        in_transaction: bool,
    ) -> list[Action]:  # fmt: skip
        """The CSMS's idTokenInfo.status for `context`, or None when it could not answer (the
        table's offline policy decides). Only the first answer for a request counts."""
        connection = self._asked.pop(context, None)
        if connection is None:
            return []
        _, name, evse, token = context
        rule = self.table.private[name]
        meaning = rule.meaning
        assert isinstance(meaning, Authorize)
        if status is None:
            status = "Accepted" if meaning.offline == "accept" else "Unknown"
        answer_rule = self.table.private[meaning.answer]
        answer = answer_rule.meaning
        assert isinstance(answer, AuthorizeAnswer)
        data = answer_rule.layout.encode(answer.values(status, answer_rule.layout), self.zone)
        answer_effect = self._effect(answer_rule, evse, data, f"card {status}", connection)
        actions: list[Action] = [Answer(answer_effect)]
        if status == "Accepted" and evse is not None:
            id_token = {"idToken": token[:36], "type": meaning.id_token_type}
            cards = self._cards.setdefault(evse, _Cards())
            if in_transaction:
                cards.stop = id_token
            else:
                cards.start = (id_token, now + CARD_VALIDITY)
        return actions

    def _settlement(
        self,
        rule: PrivateRule,
        meaning: Settlement,
        evse: int,
        ioa: int,
        data: bytes,
        values: Mapping[str, FieldValue],
        connection: int,
    ) -> list[Action]:
        key = f"{ioa:X}:{data.hex()}"
        ack_rule = self.table.private[meaning.answer]
        ack_data = ack_rule.layout.encode(meaning.answer_values, self.zone)
        ack = self._effect(ack_rule, evse, ack_data, "settlement stored", connection)
        token = _text(values.get(meaning.id_token))
        record = Record(
            evse=evse,
            key=key,
            id_token={"idToken": token[:36], "type": meaning.id_token_type} if token else None,
            started_at=_epoch(values.get(meaning.started_at)),
            ended_at=_epoch(values.get(meaning.ended_at)),
            meter_start_wh=_number(values.get(meaning.meter_start.field))
            * meaning.meter_start.wh_per_count,
            meter_stop_wh=_number(values.get(meaning.meter_stop.field))
            * meaning.meter_stop.wh_per_count,
            amount=(
                round(_number(values.get(meaning.amount.field)) * meaning.amount.scale, 6)
                if meaning.amount is not None
                else None
            ),
            stop_reason=(
                meaning.stop_reason.reason_of(int(_number(values.get(meaning.stop_reason.field))))
                if meaning.stop_reason is not None
                else "Local"
            ),
            record_wins=meaning.wins == "record",
            fields={
                spec.name: _json_safe(values.get(spec.name), spec.type)
                for spec in rule.layout.fields
                if spec.name != meaning.id_token
            },
            ack=ack,
        )
        return [Settle(record, repeat=key in self.settled)]

    def settled_now(self, key: str) -> list[str]:
        """Remember a settled record; the list to store (meta `settled`)."""
        if key not in self.settled:
            self.settled.append(key)
            del self.settled[:-SETTLED_KEPT]
        return list(self.settled)

    # --- what the core asks ------------------------------------------------------------------------

    def card_for_start(self, evse: int, now: float) -> dict[str, str] | None:
        """The accepted card waiting for this connector's next transaction (taken)."""
        cards = self._cards.get(evse)
        if cards is None or cards.start is None:
            return None
        token, until = cards.start
        cards.start = None
        return token if until > now else None

    def start_card(self, evse: int) -> tuple[dict[str, str], float] | None:
        """The accepted card waiting for this connector's next transaction and until when it is
        valid (monotonic), not taken: what the core stores."""
        cards = self._cards.get(evse)
        return None if cards is None else cards.start

    def restore_start_card(self, evse: int, id_token: dict[str, str], until: float) -> None:
        """A start card the core had stored, back after a restart."""
        self._cards.setdefault(evse, _Cards()).start = (dict(id_token), until)

    def stop_card(self, evse: int) -> dict[str, str] | None:
        """The card that stopped this connector's transaction (taken)."""
        cards = self._cards.get(evse)
        if cards is None:
            return None
        token, cards.stop = cards.stop, None
        return token

    def _effect(
        self, rule: PrivateRule, evse: int | None, data: bytes, purpose: str, connection: int
    ) -> Send104Private:
        ioa = rule.ioa_for(evse if rule.per_connector else None)
        return Send104Private(
            rule.type_id,
            rule.cot,
            object_bytes(ioa, data, self.table.link.ioa_size),
            purpose=f"{rule.name}: {purpose}",
            common_address=self.table.connector_addresses.get(evse) if evse else None,
            connection=connection,
        )


def _text(value: FieldValue | None) -> str:
    """A card field as text; "" for no card (empty, or all zeros as chargers send without one)."""
    text = value.hex() if isinstance(value, bytes) else "" if value is None else str(value).strip()
    return "" if not text.strip("0") else text


def _number(value: FieldValue | None) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _epoch(value: FieldValue | None) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _json_safe(value: FieldValue | None, kind: str) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if kind == "cp56" and isinstance(value, int | float):
        return format_utc(datetime.fromtimestamp(float(value), UTC))
    return value
