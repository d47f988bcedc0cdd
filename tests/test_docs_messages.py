"""The log events and messages the operator docs quote exist in the code (issue 18 item 11).

docs/troubleshooting.md and docs/operating.md name log events (`south.unauthorized`,
`csms.connect_failed`, ...) and configuration keys (`south.listen`) in code font. Every such dotted
name must be one the code writes (a string literal in adapters/ or bridge/) or a configuration key
(`section.key` of `adapters.config`); a renamed event fails here instead of leaving an operator grepping
the logs for a line that never comes. The messages troubleshooting.md quotes in its tables' first
column are checked the same way, by their fixed part.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from adapters.config import BridgeSection, CsmsSection, Iec104Station, OcppStation, SouthSection

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/troubleshooting.md", "docs/operating.md")
DOTTED = re.compile(r"`([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)`")
NOT_NAMES = ("toml", "lock", "md", "py", "yaml", "yml", "json", "jsonl", "txt", "png")
SECTIONS = {
    "bridge": set(BridgeSection.model_fields),
    "csms": set(CsmsSection.model_fields),
    "south": set(SouthSection.model_fields),
    "stations": set(OcppStation.model_fields) | set(Iec104Station.model_fields),
}


def _code_literals() -> set[str]:
    literals: set[str] = set()
    for folder in ("adapters", "bridge"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            literals.update(re.findall(r"\"([^\"\n]{1,200})\"", text))
            literals.update(re.findall(r"'([^'\n]{1,200})'", text))
    return literals


LITERALS = _code_literals()
# the code's text with implicitly concatenated string literals joined ("a"\n  f"b" → "ab")
SOURCE = re.sub(
    r"[\"']\s*\n\s*f?[\"']",
    "",
    "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("adapters", "bridge")
        for path in (ROOT / folder).rglob("*.py")
    ),
)
# f-string templates of the code as patterns: a replacement field matches any text
TEMPLATES = [
    re.compile(".*".join(re.escape(chunk) for chunk in re.split(r"\{[^{}]*\}", literal)))
    for literal in re.findall(r"f\"([^\"\n]{8,300})\"", SOURCE)
    if "{" in literal
]
# what the operating system says (`os.strerror`), quoted after the bridge's own words
STRERRORS = {os.strerror(number) for number in range(1, 134)}


def _written(message: str) -> bool:
    """Whether the code writes `message`: each of its fixed parts as it is (or the operating
    system's words), or one of its f-strings matches it whole (its placeholders standing for the
    replacement fields)."""
    if all(part in SOURCE or part in STRERRORS for part in _fixed_parts(message)):
        return True
    return any(
        template.search(message)
        for template in TEMPLATES
        if len(template.pattern.replace(".*", "")) >= 16
    )


def _dotted(doc: str) -> list[str]:
    names = set(DOTTED.findall((ROOT / doc).read_text(encoding="utf-8")))
    return sorted(
        name
        for name in names
        if name.rsplit(".", 1)[-1] not in NOT_NAMES and not name.startswith("net.")
    )


@pytest.mark.parametrize("doc", DOCS)
def test_every_dotted_name_the_docs_quote_is_a_log_event_or_a_key(doc: str) -> None:
    unknown = []
    for name in _dotted(doc):
        section, _, key = name.partition(".")
        if name in LITERALS or key in SECTIONS.get(section, ()):
            continue
        if name.rsplit(".", 1)[-1] in LITERALS:  # a field of a JSON body (`stations.up`)
            continue
        unknown.append(name)
    assert unknown == [], f"{doc} quotes names the code never writes: {unknown}"


def test_the_log_events_troubleshooting_names_are_found() -> None:
    names = _dotted("docs/troubleshooting.md")
    for event in ("south.unauthorized", "csms.connect_failed", "iec104.unreachable"):
        assert event in names


def _fixed_parts(message: str) -> list[str]:
    """The parts of a quoted message the code writes as they are: placeholders (ADDRESS, `<id>`, …)
    and ellipses cut it."""
    parts = re.split(r"\b[A-Z]{2,}\b|<[^>]*>|…|\.\.\.", message)
    return [part.strip(" :(),'") for part in parts if len(part.strip(" :(),'")) >= 6]


def test_the_messages_troubleshooting_quotes_are_the_codes() -> None:
    text = (ROOT / "docs/troubleshooting.md").read_text(encoding="utf-8")
    quoted = []
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        quoted.extend(re.findall(r"`([^`]+)`", first))
    assert len(quoted) >= 6
    missing = [
        message
        for message in quoted
        if " " in message  # messages, not event names or keys
        and not _written(message)
    ]
    assert missing == [], missing
