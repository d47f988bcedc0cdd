"""bridge.stations.v16.id_token: the idToken type inference rule and when a token needs an alias (C01, D01, F01)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.id_token import (
    IdTokenTypeRule,
    fits_id_tag,
    id_tag_for,
    id_token_for,
    infer_type,
)
from bridge.stations.v16.outcome import Payload

SCHEMAS = OfficialSchemas()


@pytest.mark.parametrize(
    ("id_tag", "expected"),
    [
        ("04A2B3C4", "ISO14443"),  # 4-byte UID
        ("04a2b3c4d5e6f7", "ISO14443"),  # 7-byte UID, lower case
        ("0102030405060708090A", "ISO14443"),  # 10-byte UID
        ("E004010012345678", "ISO15693"),  # 8-byte UID
        ("DE-ABC-C12345678-9", "eMAID"),
        ("DEABCC123456789", "eMAID"),
        ("ABCDEF123", "Central"),  # 9 hex characters: no UID length
        ("driver-42", "Central"),
        ("", "NoAuthorization"),
    ],
)
def test_c01_default_rule(id_tag: str, expected: str) -> None:
    assert infer_type(id_tag) == expected
    request = {"idToken": id_token_for(id_tag)}
    assert SCHEMAS.check(OcppVersion.V201, "Authorize", PayloadKind.REQUEST, request) is None


def test_rule_is_configurable() -> None:
    assert infer_type("driver-42", IdTokenTypeRule(default="Local")) == "Local"
    assert infer_type("E004010012345678", IdTokenTypeRule(fixed="ISO14443")) == "ISO14443"
    assert infer_type("DEABCC123456789", IdTokenTypeRule(detect_emaid=False)) == "Central"
    assert infer_type("ABCD", IdTokenTypeRule(hex_lengths={4: "KeyCode"})) == "KeyCode"


def test_rule_refuses_a_type_2_0_1_does_not_have() -> None:
    with pytest.raises(ValueError, match="IdTokenEnumType"):
        IdTokenTypeRule(default="RFID")


def test_known_token_is_restored_with_its_type() -> None:
    original = {"idToken": "a-very-long-token-of-thirty-chars", "type": "eMAID"}
    known = {"ALIAS0001": original}
    assert id_token_for("ALIAS0001", known=known.get) == original
    assert id_token_for("04A2B3C4", known=known.get) == {"idToken": "04A2B3C4", "type": "ISO14443"}


@pytest.mark.parametrize(
    ("token", "fits"),
    [
        ("04A2B3C4", True),
        ("x" * 20, True),
        ("x" * 21, False),
        ("with space", False),
        ("", False),
        ("tëst", False),
    ],
)
def test_fits_id_tag(token: str, fits: bool) -> None:
    assert fits_id_tag(token) is fits


class TestIdTagFor:
    def test_short_token_travels_as_it_is(self) -> None:
        assert id_tag_for({"idToken": "04A2B3C4", "type": "ISO14443"}, None) == "04A2B3C4"

    def test_long_token_needs_an_alias(self) -> None:
        token = {"idToken": "x" * 36, "type": "Central"}
        assert id_tag_for(token, None) is None
        assert id_tag_for(token, lambda t: "A1") == "A1"

    def test_an_alias_that_does_not_fit_is_refused(self) -> None:
        assert id_tag_for({"idToken": "x" * 36, "type": "Central"}, lambda t: "y" * 21) is None

    def test_alias_function_sees_the_whole_token(self) -> None:
        seen: list[Payload] = []

        def alias(token: Payload) -> str:
            seen.append(token)
            return "A2"

        token = {"idToken": "z" * 30, "type": "eMAID"}
        id_tag_for(token, alias)
        assert seen == [token]


@given(st.text(alphabet="0123456789ABCDEFabcdef-*_=:+|@.xyzXYZ", max_size=20))
def test_any_idtag_gives_a_valid_2_0_1_token(id_tag: str) -> None:
    request = {"idToken": id_token_for(id_tag)}
    assert SCHEMAS.check(OcppVersion.V201, "Authorize", PayloadKind.REQUEST, request) is None
