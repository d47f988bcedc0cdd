"""idTag (1.6, at most 20 characters) ⇄ IdTokenType (2.0.1, `{idToken (≤ 36), type}`).

Rules
- Up (charger → CSMS): an idTag the bridge itself sent down (an alias, or a short token whose 2.0.1 type
  must survive the round trip) is looked up through the injected `known` function and comes back as the
  original IdTokenType. Any other idTag gets its type from `IdTokenTypeRule` (configurable per station):
  1. `fixed`, when set, is every idTag's type (e.g. "ISO14443" for an RFID-only charger);
  2. the empty idTag is "NoAuthorization";
  3. hexadecimal digits, counted as characters: 8, 14 or 20 → "ISO14443" (4-, 7- or 10-byte UIDs),
     16 → "ISO15693" (8-byte UIDs), per `hex_lengths`;
  4. an eMAID (ISO 15118 / DIN SPEC 91286: 2-letter country, 3-character provider, "C", 8 characters,
     optional check character, with or without dashes) → "eMAID";
  5. otherwise `default` ("Central").
- Down (CSMS → charger): a token that fits an idTag (1 to 20 printable ASCII characters) is sent as it
  is; a longer one (or one with other characters) needs the injected `alias` function, which returns a
  durable idTag for it or None when it cannot. The alias store (SQLite) and its case-insensitive lookups
  belong to the core; this module only decides when an alias is needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from bridge.stations.v16.outcome import Payload

MAX_ID_TAG: Final = 20
ID_TOKEN_TYPES: Final = frozenset(
    {
        "Central",
        "eMAID",
        "ISO14443",
        "ISO15693",
        "KeyCode",
        "Local",
        "MacAddress",
        "NoAuthorization",
    }
)

#: An injected lookup: the IdTokenType the bridge sent down as this idTag, if any.
KnownToken = Callable[[str], Payload | None]
#: An injected alias function: the idTag to use for an IdTokenType that does not fit one, or None.
AliasFor = Callable[[Payload], str | None]

_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_EMAID = re.compile(r"^[A-Za-z]{2}-?[A-Za-z0-9]{3}-?[Cc][A-Za-z0-9]{8}(?:-?[A-Za-z0-9])?$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")

_DEFAULT_HEX_LENGTHS: Final[Mapping[int, str]] = MappingProxyType(
    {8: "ISO14443", 14: "ISO14443", 20: "ISO14443", 16: "ISO15693"}
)


@dataclass(frozen=True, slots=True)
class IdTokenTypeRule:
    """How a charger's idTag gets its 2.0.1 type."""

    default: str = "Central"
    fixed: str | None = None
    hex_lengths: Mapping[int, str] = field(default_factory=lambda: _DEFAULT_HEX_LENGTHS)
    detect_emaid: bool = True

    def __post_init__(self) -> None:
        for token_type in (self.default, self.fixed, *self.hex_lengths.values()):
            if token_type is not None and token_type not in ID_TOKEN_TYPES:
                raise ValueError(f"{token_type!r} is not a 2.0.1 IdTokenEnumType")


DEFAULT_RULE: Final = IdTokenTypeRule()


def infer_type(id_tag: str, rule: IdTokenTypeRule = DEFAULT_RULE) -> str:
    """The 2.0.1 IdTokenEnumType of a charger's idTag (see the module rules)."""
    if rule.fixed is not None:
        return rule.fixed
    if id_tag == "":
        return "NoAuthorization"
    if _HEX.match(id_tag) and len(id_tag) in rule.hex_lengths:
        return rule.hex_lengths[len(id_tag)]
    if rule.detect_emaid and _EMAID.match(id_tag):
        return "eMAID"
    return rule.default


def id_token_for(
    id_tag: str, rule: IdTokenTypeRule = DEFAULT_RULE, known: KnownToken | None = None
) -> Payload:
    """The 2.0.1 IdTokenType for a charger's idTag."""
    if known is not None:
        original = known(id_tag)
        if original is not None:
            return dict(original)
    return {"idToken": id_tag, "type": infer_type(id_tag, rule)}


def fits_id_tag(token: str) -> bool:
    """Whether a 2.0.1 idToken can travel as a 1.6 idTag unchanged."""
    return len(token) <= MAX_ID_TAG and bool(_PRINTABLE_ASCII.match(token))


def id_tag_for(id_token: Payload, alias: AliasFor | None) -> str | None:
    """The idTag to send for a 2.0.1 IdTokenType, or None when it has none (no alias available)."""
    token = id_token.get("idToken")
    if not isinstance(token, str):
        return None
    if fits_id_tag(token):
        return token
    if alias is None:
        return None
    tag = alias(id_token)
    return tag if tag is not None and fits_id_tag(tag) else None
