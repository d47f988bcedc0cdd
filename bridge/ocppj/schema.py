"""Payload validation against the official OCPP JSON schemas: the interface the core uses.

Rules
- The core never loads schema files: an object satisfying `SchemaRegistry` is passed in. The adapters'
  implementation (`adapters.schemas`) compiles the schemas shipped in the `ocpp` package with a compiled
  validator (jsonschema-rs), date-time formats included.
- `check` returns the first `Violation` or None; it never raises for any JSON payload.
- `fault_for(version, violation)` turns the failed schema keyword into the CALLERROR fault of the table
  in `bridge.ocppj.errors`. `pattern` is a data-type rule (the official schemas have none; the registry adds
  the character rules of CiStrings and identifiers): TypeConstraintViolation, as a type or a format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.ocppj.errors import Fault, OcppVersion


class PayloadKind(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"

    # Members are singletons compared by identity: an identity hash is consistent with that and
    # costs no Python call (Enum's own hashes the name: measurable on every frame, as a dict key).
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a payload does not match its schema."""

    keyword: str  # the JSON-schema keyword that failed: "required", "type", "enum", ...
    path: str  # where in the payload, dotted: "transactionInfo.transactionId", "" for the root
    message: str

    def describe(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SchemaRegistry(Protocol):
    def knows(self, version: OcppVersion, action: str) -> bool:
        """Whether `action` is an action of `version` (its schemas exist)."""
        ...

    def check(
        self, version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]
    ) -> Violation | None:
        """The first violation of the action's schema, or None when the payload is valid."""
        ...


_OCCURRENCE_KEYWORDS = frozenset({"minItems", "maxItems", "uniqueItems", "minProperties"})
_TYPE_KEYWORDS = frozenset({"type", "maxLength", "minLength", "format", "pattern"})


def fault_for(version: OcppVersion, violation: Violation) -> Fault:
    """The CALLERROR fault for a schema violation (see the table in `bridge.ocppj.errors`)."""
    keyword = violation.keyword
    if keyword == "additionalProperties":
        return Fault.FORMAT if version is OcppVersion.V16 else Fault.PROTOCOL
    if keyword == "required":
        return Fault.PROTOCOL if version is OcppVersion.V16 else Fault.OCCURRENCE
    if keyword in _OCCURRENCE_KEYWORDS:
        return Fault.OCCURRENCE
    if keyword in _TYPE_KEYWORDS:
        return Fault.TYPE
    return Fault.PROPERTY
