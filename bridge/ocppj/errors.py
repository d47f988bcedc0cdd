"""OCPP versions and the RPC-framework error vocabulary of each.

Rules
- A `Fault` says *what* went wrong, independent of the OCPP version. `error_code(version, fault)` spells it
  the way that version's OCPP-J specification does: OCPP 1.6 keeps its published typos
  (`FormationViolation`, `OccurenceConstraintViolation`, errata 5.1/5.2 "do not fix"), OCPP 2.0.1 has
  `FormatViolation`, `OccurrenceConstraintViolation`, `MessageTypeNotSupported` and `RpcFrameworkError`.
- Received error codes are read tolerantly: `fault_of(code)` knows both spellings of every code, so a 1.6
  peer that uses the corrected spelling is understood. Anything else is a `GENERIC` fault.
- Errors split as in h2/h11: `PeerError` subclasses describe what the peer did wrong and carry the fault to
  answer with; `BridgeMisuse` is our own bug and is raised, never sent.

Which fault answers which broken input (the whole table; `bridge.ocppj.frames` and `bridge.ocppj.schema` apply it).
Where the two specifications describe the same input differently, each version gets its own fault:

| input                                              | 1.6 code (fault)                         | 2.0.1 code (fault)                        |
|----------------------------------------------------|------------------------------------------|-------------------------------------------|
| readable id: not JSON, payload no object or null*   | FormationViolation (FORMAT)              | FormatViolation (FORMAT)                  |
| not an array; unreadable message id; bad CALL shape | FormationViolation (RPC_FRAMEWORK)       | RpcFrameworkError (RPC_FRAMEWORK)         |
| unknown message type number                         | FormationViolation (MESSAGE_TYPE)        | MessageTypeNotSupported (MESSAGE_TYPE)    |
| message id already used by a call being handled     | FormationViolation (RPC_FRAMEWORK)       | RpcFrameworkError (RPC_FRAMEWORK)         |
| unknown action                                      | NotImplemented                           | NotImplemented                            |
| known action the receiver does not handle           | NotSupported                             | NotSupported                              |
| schema: property not in the schema                  | FormationViolation (FORMAT): "PDU structure" | ProtocolError (PROTOCOL): "PDU structure" |
| schema: required property missing                   | ProtocolError (PROTOCOL): "incomplete"   | OccurrenceConstraintViolation (OCCURRENCE)|
| schema: too many / too few array items              | OccurenceConstraintViolation (OCCURRENCE)| OccurrenceConstraintViolation (OCCURRENCE)|
| schema: wrong JSON type, string too long, bad date  | TypeConstraintViolation (TYPE)           | TypeConstraintViolation (TYPE)            |
| integer field: fraction, exponent or beyond 32 bits | TypeConstraintViolation (TYPE)           | TypeConstraintViolation (TYPE)            |
| CiString / identifier with a refused character**    | TypeConstraintViolation (TYPE)           | TypeConstraintViolation (TYPE)            |
| schema: value outside enum or the schema's range    | PropertyConstraintViolation (PROPERTY)   | PropertyConstraintViolation (PROPERTY)    |
| CALL the sending party may not send (directions)    | NotSupported                             | NotSupported                              |

The id decides between the first two rows (2.0.1 part 4 §4.2.3): what cannot be read as far as its message
id (not JSON, not UTF-8, not an array) is RPC_FRAMEWORK with id "-1"; a frame whose id can be read (also
salvaged from broken JSON) and whose payload is malformed is FORMAT. *A null payload is the "no payload"
notation (part 4 §4.1.5): read as {} for an action whose request may be empty, else FORMAT like a string.
**1.6 CiStrings hold printable ASCII, 2.0.1 identifiers no control character (`adapters.schemas` states
which fields); `bridge.ocppj.directions` says who sends which CALL.
"""

from __future__ import annotations

import enum


class OcppVersion(enum.Enum):
    """An OCPP-J version, named by its WebSocket subprotocol."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"

    # Members are singletons compared by identity: an identity hash is consistent with that and
    # costs no Python call (Enum's own hashes the name: measurable on every frame, as a dict key).
    __hash__ = object.__hash__

    @property
    def subprotocol(self) -> str:
        return self.value


class Fault(enum.Enum):
    """What went wrong, independent of how a version spells it."""

    FORMAT = "format"
    RPC_FRAMEWORK = "rpc-framework"
    MESSAGE_TYPE = "message-type"
    NOT_IMPLEMENTED = "not-implemented"
    NOT_SUPPORTED = "not-supported"
    PROTOCOL = "protocol"
    OCCURRENCE = "occurrence"
    TYPE = "type"
    PROPERTY = "property"
    SECURITY = "security"
    INTERNAL = "internal"
    GENERIC = "generic"


_CODES_V16: dict[Fault, str] = {
    Fault.FORMAT: "FormationViolation",
    Fault.RPC_FRAMEWORK: "FormationViolation",
    Fault.MESSAGE_TYPE: "FormationViolation",
    Fault.NOT_IMPLEMENTED: "NotImplemented",
    Fault.NOT_SUPPORTED: "NotSupported",
    Fault.PROTOCOL: "ProtocolError",
    Fault.OCCURRENCE: "OccurenceConstraintViolation",
    Fault.TYPE: "TypeConstraintViolation",
    Fault.PROPERTY: "PropertyConstraintViolation",
    Fault.SECURITY: "SecurityError",
    Fault.INTERNAL: "InternalError",
    Fault.GENERIC: "GenericError",
}

_CODES_V201: dict[Fault, str] = {
    Fault.FORMAT: "FormatViolation",
    Fault.RPC_FRAMEWORK: "RpcFrameworkError",
    Fault.MESSAGE_TYPE: "MessageTypeNotSupported",
    Fault.NOT_IMPLEMENTED: "NotImplemented",
    Fault.NOT_SUPPORTED: "NotSupported",
    Fault.PROTOCOL: "ProtocolError",
    Fault.OCCURRENCE: "OccurrenceConstraintViolation",
    Fault.TYPE: "TypeConstraintViolation",
    Fault.PROPERTY: "PropertyConstraintViolation",
    Fault.SECURITY: "SecurityError",
    Fault.INTERNAL: "InternalError",
    Fault.GENERIC: "GenericError",
}

_CODES: dict[OcppVersion, dict[Fault, str]] = {
    OcppVersion.V16: _CODES_V16,
    OcppVersion.V201: _CODES_V201,
}

#: The error codes each version's specification allows in a CALLERROR.
VALID_CODES: dict[OcppVersion, frozenset[str]] = {
    version: frozenset(codes.values()) for version, codes in _CODES.items()
}

# Both spellings of every code, so a received code is understood whatever the peer's version habits.
_FAULT_OF_CODE: dict[str, Fault] = {
    "FormationViolation": Fault.FORMAT,
    "FormatViolation": Fault.FORMAT,
    "RpcFrameworkError": Fault.RPC_FRAMEWORK,
    "MessageTypeNotSupported": Fault.MESSAGE_TYPE,
    "NotImplemented": Fault.NOT_IMPLEMENTED,
    "NotSupported": Fault.NOT_SUPPORTED,
    "ProtocolError": Fault.PROTOCOL,
    "OccurenceConstraintViolation": Fault.OCCURRENCE,
    "OccurrenceConstraintViolation": Fault.OCCURRENCE,
    "TypeConstraintViolation": Fault.TYPE,
    "PropertyConstraintViolation": Fault.PROPERTY,
    "SecurityError": Fault.SECURITY,
    "InternalError": Fault.INTERNAL,
    "GenericError": Fault.GENERIC,
}


def error_code(version: OcppVersion, fault: Fault) -> str:
    """The CALLERROR errorCode that `version` uses for `fault`."""
    return _CODES[version][fault]


def fault_of(code: str) -> Fault:
    """Read a received errorCode, in either version's spelling; unknown codes are GENERIC."""
    return _FAULT_OF_CODE.get(code, Fault.GENERIC)


def normalize_code(version: OcppVersion, code: str) -> str:
    """A received code re-spelled for `version` (used when forwarding an error to the other side)."""
    if code in VALID_CODES[version]:
        return code
    return error_code(version, fault_of(code))


class BridgeError(Exception):
    """Base of every exception this package raises."""


class BridgeMisuse(BridgeError):
    """Our own code called the core wrongly. A bug: raised, never sent to a peer."""


class OutboundPayloadInvalid(BridgeMisuse):
    """A payload the bridge itself built does not match the official schema (a translation bug)."""

    def __init__(self, action: str, kind: str, detail: str) -> None:
        super().__init__(f"{action} {kind} built by the bridge is invalid: {detail}")
        self.action = action
        self.kind = kind
        self.detail = detail


class QueueFull(BridgeError):
    """Too many CALLs are waiting for their turn on one connection."""
