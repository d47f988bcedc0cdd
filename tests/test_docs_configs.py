"""The configurations the README and the guides show pass `ocpp-bridge check` as they are (issue 18's
walk-through: the README's example named a dial-in station without `[south] iec104_listen`, which
`check` refuses). docs/operating.md's container configuration is checked in tests/test_dockerfile.py
(it needs the container's paths and a password)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ("README.md", "docs/simulate.md")


def toml_blocks(doc: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", (ROOT / doc).read_text(encoding="utf-8"), re.DOTALL)


@pytest.mark.parametrize("doc", GUIDES)
def test_the_configurations_the_guides_show_pass_check(doc: str, tmp_path: Path) -> None:
    blocks = toml_blocks(doc)
    assert blocks, doc
    for index, block in enumerate(blocks):
        path = tmp_path / f"bridge{index}.toml"
        path.write_text(block, encoding="utf-8")
        result = CliRunner().invoke(app, ["check", "--config", str(path)])
        assert result.exit_code == 0, (doc, index, result.output)
        assert "valid" in result.output
