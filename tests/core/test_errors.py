"""Error-code vocabulary per version (OCPP-J 1.6 §4.2.3 with errata 5.1/5.2; 2.0.1 part 4 §4.3)."""

from __future__ import annotations

import pytest

from bridge.ocppj.errors import (
    VALID_CODES,
    Fault,
    OcppVersion,
    error_code,
    fault_of,
    normalize_code,
)

V16, V201 = OcppVersion.V16, OcppVersion.V201


def test_the_two_code_tables_are_the_specifications() -> None:
    assert VALID_CODES[V16] == {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
    assert VALID_CODES[V201] == {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    }


@pytest.mark.parametrize("fault", list(Fault))
def test_every_fault_has_a_valid_code_in_both_versions(fault: Fault) -> None:
    assert error_code(V16, fault) in VALID_CODES[V16]
    assert error_code(V201, fault) in VALID_CODES[V201]


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        ("FormationViolation", Fault.FORMAT),
        ("FormatViolation", Fault.FORMAT),
        ("OccurenceConstraintViolation", Fault.OCCURRENCE),
        ("OccurrenceConstraintViolation", Fault.OCCURRENCE),
        ("SomethingElse", Fault.GENERIC),
    ],
)
def test_received_codes_are_read_in_either_spelling(code: str, fault: Fault) -> None:
    assert fault_of(code) is fault


def test_forwarded_codes_are_respelled() -> None:
    assert normalize_code(V201, "FormationViolation") == "FormatViolation"
    assert normalize_code(V16, "OccurrenceConstraintViolation") == "OccurenceConstraintViolation"
    assert normalize_code(V16, "RpcFrameworkError") == "FormationViolation"
    assert normalize_code(V201, "Bogus") == "GenericError"
    assert normalize_code(V201, "NotSupported") == "NotSupported"
