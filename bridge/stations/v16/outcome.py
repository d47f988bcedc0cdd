"""What a CSMS → station translation returns, and the problems a station → CSMS translation reports.

Rules
- A translation of a 2.0.1 request never raises on peer data. It returns one of:
  - `Forward(action, payload)`: send this OCPP 1.6 call to the charger; turn its answer into the 2.0.1
    response with the converter named after the action (`reset_response`, ...).
  - `ForwardAll(calls)`: several 1.6 calls, in order (one 2.0.1 request that 1.6 splits, e.g.
    GetInstalledCertificateIds for two certificate types); their answers are merged by the converter.
  - `Reply(response, reason)`: the request cannot be expressed in 1.6 (or needs no charger): answer the CSMS
    with this truthful 2.0.1 response now. `reason` is for the log, never sent.
  - `Emulate(kind, detail, response)`: the bridge itself produces what the CSMS asked for (a Heartbeat, a
    TransactionEvent); `response` is the 2.0.1 answer to send once the core has taken the job.
- `status_info(reason_code, additional_info)` builds a 2.0.1 StatusInfoType; reason codes come from the
  2.0.1 appendix list (at most 20 characters) and `additional_info` is cut to its 512-character limit.
- Station → CSMS conversions never drop data silently: what cannot be carried becomes a `Problem` (a
  diagnostic for the core to report), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Payload = dict[str, Any]

MAX_REASON_CODE = 20
MAX_ADDITIONAL_INFO = 512


@dataclass(frozen=True, slots=True)
class Forward:
    """Send this OCPP 1.6 call to the charger."""

    action: str
    payload: Payload


@dataclass(frozen=True, slots=True)
class ForwardAll:
    """Send these OCPP 1.6 calls in order; merge their answers."""

    calls: tuple[Forward, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the CSMS with this 2.0.1 response without asking the charger."""

    response: Payload
    reason: str


@dataclass(frozen=True, slots=True)
class Emulate:
    """The bridge produces the requested behaviour itself; `response` answers the CSMS."""

    kind: str
    response: Payload
    detail: Payload = field(default_factory=dict)


Downward = Forward | ForwardAll | Reply | Emulate


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in a charger's message that could not be carried into 2.0.1 as it was."""

    kind: str  # e.g. "non-numeric-value", "unsynchronised-clock"
    path: str  # dotted path into the 1.6 payload, "" for the whole message
    detail: str


def status_info(reason_code: str, additional_info: str | None = None) -> Payload:
    """A 2.0.1 StatusInfoType."""
    info: Payload = {"reasonCode": reason_code[:MAX_REASON_CODE]}
    if additional_info:
        info["additionalInfo"] = additional_info[:MAX_ADDITIONAL_INFO]
    return info


def refuse(status: str, reason_code: str, why: str, **fields: Any) -> Reply:
    """A `Reply` with `status`, a statusInfo carrying `reason_code` and `why`, and any extra fields."""
    return Reply({"status": status, **fields, "statusInfo": status_info(reason_code, why)}, why)
