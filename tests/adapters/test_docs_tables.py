"""docs/ tables are rendered from the tables the code runs (`adapters.cli.docs_tables`); they must match."""

from __future__ import annotations

import pytest

from adapters.cli.docs_tables import MissingRegion, render_document, rendered


def test_committed_documents_match_the_tables_they_render() -> None:
    for path, text in rendered().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run `python -m adapters.cli.docs_tables`"
        )


def test_a_region_is_replaced_between_its_markers_only() -> None:
    text = "intro\n<!-- generated: t -->\nold\n<!-- end generated: t -->\noutro\n"
    assert render_document(text, {"t": lambda: "new | row"}) == (
        "intro\n<!-- generated: t -->\nnew | row\n<!-- end generated: t -->\noutro\n"
    )


def test_a_document_without_its_region_is_refused() -> None:
    with pytest.raises(MissingRegion, match="'t'"):
        render_document("no markers here\n", {"t": lambda: "x"})


def test_the_shipped_104_table_is_rendered_with_every_block() -> None:
    text = next(t for p, t in rendered().items() if p.name == "mapping-language.md")
    region = text.split("<!-- generated: table-gb-dc-charger -->", 1)[1].split("<!-- end", 1)[0]
    for ioa in ("0x0021", "0x4001", "0x6401", "0x6001", "0x6201", "0x6100", "0x6300"):
        assert f"| {ioa} |" in region, ioa
