"""StartTransaction, MeterValues and StopTransaction → TransactionEvent Started/Updated/Ended (or
MeterValues when no transaction), and the answers back.

Rules
- State comes in as arguments: the bridge-issued 2.0.1 transactionId, seqNo, the EVSE of a stopping
  transaction, the remoteStartId of a pending RequestStartTransaction, the `offline` flag, the receive time.
  Nothing here numbers or remembers anything.
- Started (E01–E03): seqNo as given (0 for the first event); evse {id = connectorId, connectorId 1};
  idToken from the idTag (`bridge.stations.v16.id_token`); the Transaction.Begin Energy.Active.Import.Register
  sample from meterStart (Wh); reservationId carried over. triggerReason RemoteStart with remoteStartId
  when the core matched a pending RequestStartTransaction, else Authorized (a 1.6 transaction always
  starts with an idTag).
- Updated (MeterValues with a transactionId): triggerReason from the samples' context: Trigger →
  Trigger, Sample.Clock → MeterValueClock, anything else → MeterValuePeriodic. Without a transactionId, or
  on connector 0, MeterValues stays MeterValues (evseId = connectorId, 0 = the station).
- Ended (E06): stoppedReason and triggerReason from `STOP_REASON_UP`; an idTag on a local or missing
  reason means the driver stopped with a token (StopAuthorized); idToken is sent when the stop was
  authorized by one, but never for remote or reset stops (2.0.1 TransactionEventRequest.idToken). The
  converted transactionData gets a Transaction.End register sample from meterStop unless it has one.
- A timestamp that cannot be forwarded (see `bridge.timestamps`) is replaced by the receive time;
  that, non-numeric samples and Temperature/RPM readings come back beside the payload, never lost.
- Answers: StartTransaction.conf carries the core's integer transactionId and the idTagInfo of the
  TransactionEventResponse (Accepted when the CSMS sent none: it objected to nothing);
  StopTransaction.conf has idTagInfo only when the CSMS sent idTokenInfo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.stations.v16.auth import id_tag_info
from bridge.stations.v16.enums import CONTEXT_TRIGGER_REASON, STOP_REASON_UP
from bridge.stations.v16.id_token import (
    DEFAULT_RULE,
    AliasFor,
    IdTokenTypeRule,
    KnownToken,
    id_token_for,
)
from bridge.stations.v16.meter import (
    NO_SIGNING_INFO,
    ExtraReading,
    SignedMeterDefaults,
    begin_meter_value,
    convert_meter_values,
    with_transaction_end,
)
from bridge.stations.v16.outcome import Payload, Problem
from bridge.timestamps import UTC_POLICY, TimestampPolicy, timestamp_or

_NO_ID_TOKEN_REASONS = frozenset({"Remote", "HardReset", "SoftReset"})
_TOKEN_STOP_REASONS = frozenset({"", "Local", "Other"})


@dataclass(slots=True)
class Translated:
    """A 2.0.1 payload (None when nothing is left to send) and what the core must report beside it."""

    payload: Payload | None
    readings: list[ExtraReading] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _evse(connector_id: int) -> Payload:
    return {"id": connector_id, "connectorId": 1}


def transaction_started(
    request: Payload,
    *,
    transaction_id: str,
    received_at: str,
    seq_no: int = 0,
    remote_start_id: int | None = None,
    offline: bool = False,
    id_token: Payload | None = None,
    rule: IdTokenTypeRule = DEFAULT_RULE,
    known: KnownToken | None = None,
    policy: TimestampPolicy = UTC_POLICY,
) -> Translated:
    """E01/E02/F01: 1.6 StartTransaction.req → TransactionEvent(Started).

    `id_token` overrides the token derived from the idTag (e.g. the RequestStartTransaction's own).
    """
    stamp = timestamp_or(request.get("timestamp"), received_at, policy)
    info: Payload = {"transactionId": transaction_id}
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: Payload = {
        "eventType": "Started",
        "timestamp": stamp.value,
        "triggerReason": "RemoteStart" if remote_start_id is not None else "Authorized",
        "seqNo": seq_no,
        "transactionInfo": info,
        "evse": _evse(request["connectorId"]),
        "idToken": id_token or id_token_for(request["idTag"], rule, known),
        "meterValue": [begin_meter_value(request["meterStart"], stamp.value)],
    }
    if offline:
        payload["offline"] = True
    if "reservationId" in request:
        payload["reservationId"] = request["reservationId"]
    return Translated(payload, problems=[stamp.problem] if stamp.problem else [])


def meter_trigger_reason(meter_values: Sequence[Payload]) -> str:
    """The triggerReason of a TransactionEvent(Updated) carrying these 2.0.1 meter values."""
    contexts = {
        sample.get("context", "Sample.Periodic")
        for meter_value in meter_values
        for sample in meter_value.get("sampledValue", [])
    }
    for context in ("Trigger", "Sample.Clock"):
        if context in contexts:
            return CONTEXT_TRIGGER_REASON[context]
    return "MeterValuePeriodic"


def transaction_updated(
    request: Payload,
    *,
    transaction_id: str,
    seq_no: int,
    received_at: str,
    offline: bool = False,
    policy: TimestampPolicy = UTC_POLICY,
    signed: SignedMeterDefaults = NO_SIGNING_INFO,
) -> Translated:
    """E02: 1.6 MeterValues.req of a transaction → TransactionEvent(Updated)."""
    converted = convert_meter_values(
        request["meterValue"], received_at=received_at, policy=policy, signed=signed
    )
    result = Translated(None, converted.readings, converted.problems)
    if not converted.meter_values:
        return result
    result.payload = {
        "eventType": "Updated",
        "timestamp": converted.meter_values[-1]["timestamp"],
        "triggerReason": meter_trigger_reason(converted.meter_values),
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": _evse(request["connectorId"]),
        "meterValue": converted.meter_values,
    }
    if offline:
        result.payload["offline"] = True
    return result


def meter_values_request(
    request: Payload,
    *,
    received_at: str,
    policy: TimestampPolicy = UTC_POLICY,
    signed: SignedMeterDefaults = NO_SIGNING_INFO,
) -> Translated:
    """J01: 1.6 MeterValues.req outside a transaction → 2.0.1 MeterValuesRequest."""
    converted = convert_meter_values(
        request["meterValue"], received_at=received_at, policy=policy, signed=signed
    )
    payload = (
        {"evseId": request["connectorId"], "meterValue": converted.meter_values}
        if converted.meter_values
        else None
    )
    return Translated(payload, converted.readings, converted.problems)


def transaction_ended(
    request: Payload,
    *,
    transaction_id: str,
    seq_no: int,
    evse_id: int,
    received_at: str,
    offline: bool = False,
    rule: IdTokenTypeRule = DEFAULT_RULE,
    known: KnownToken | None = None,
    policy: TimestampPolicy = UTC_POLICY,
    signed: SignedMeterDefaults = NO_SIGNING_INFO,
) -> Translated:
    """E06: 1.6 StopTransaction.req → TransactionEvent(Ended)."""
    stamp = timestamp_or(request.get("timestamp"), received_at, policy)
    converted = convert_meter_values(
        request.get("transactionData", []),
        received_at=received_at,
        policy=policy,
        signed=signed,
        path="transactionData",
    )
    reason = request.get("reason", "")
    stopped_reason, trigger_reason = STOP_REASON_UP.get(reason, ("Other", "AbnormalCondition"))
    id_tag = request.get("idTag")
    if id_tag is not None and reason in _TOKEN_STOP_REASONS:
        trigger_reason = "StopAuthorized"
    payload: Payload = {
        "eventType": "Ended",
        "timestamp": stamp.value,
        "triggerReason": trigger_reason,
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id, "stoppedReason": stopped_reason},
        "evse": _evse(evse_id),
        "meterValue": with_transaction_end(
            converted.meter_values, request["meterStop"], stamp.value
        ),
    }
    if offline:
        payload["offline"] = True
    if id_tag is not None and reason not in _NO_ID_TOKEN_REASONS:
        payload["idToken"] = id_token_for(id_tag, rule, known)
    problems = ([stamp.problem] if stamp.problem else []) + converted.problems
    return Translated(payload, converted.readings, problems)


def start_transaction_response(
    response: Payload | None, *, transaction_id: int, alias: AliasFor | None = None
) -> Payload:
    """E01: TransactionEventResponse → 1.6 StartTransaction.conf with the bridge's integer id."""
    info = (response or {}).get("idTokenInfo")
    return {
        "transactionId": transaction_id,
        "idTagInfo": id_tag_info(info, alias) if isinstance(info, dict) else {"status": "Accepted"},
    }


def stop_transaction_response(
    response: Payload | None, *, alias: AliasFor | None = None
) -> Payload:
    """E06: TransactionEventResponse → 1.6 StopTransaction.conf."""
    info = (response or {}).get("idTokenInfo")
    return {"idTagInfo": id_tag_info(info, alias)} if isinstance(info, dict) else {}
