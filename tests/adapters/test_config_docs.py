"""docs/configuration.md is rendered from the settings models; it must match them."""

from __future__ import annotations

from pathlib import Path

from adapters.cli.config_docs import render
from adapters.config import BridgeSection, CsmsSection, SouthSection

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_matches_the_models() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m adapters.cli.config_docs > docs/configuration.md`"
    )


def test_every_key_is_documented() -> None:
    text = render()
    for model in (BridgeSection, CsmsSection, SouthSection):
        for name in model.model_fields:
            assert f"| `{name}` |" in text
