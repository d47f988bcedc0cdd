"""The configurations the README and the guides show pass `ocpp-bridge check` as they are (issue 18's
walk-through: the README's example named a dial-in station without `[south] iec104_listen`, which
`check` refuses). docs/operating.md's container configuration is checked in tests/test_dockerfile.py
(it needs the container's paths and a password)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app

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


def test_the_compose_file_of_two_replicas_parses_and_its_configuration_passes_check(
    tmp_path: Path, pg_url: str
) -> None:
    """docs/compose-replicas.yml (issue 20): PostgreSQL and two replicas of one configuration under
    leases. Its store's host (`postgres`, a Compose service) does not resolve here, so `check` is run
    with the store overridden by the environment to the tests' PostgreSQL (as an operator would
    override it); everything else is the file's."""
    from ruamel.yaml import YAML

    compose = YAML(typ="safe").load((ROOT / "docs" / "compose-replicas.yml").read_text())
    services = compose["services"]
    replicas = [name for name, service in services.items() if service.get("image") == "ocpp-bridge"]
    assert replicas == ["bridge-a", "bridge-b"]
    for name in replicas:
        service = services[name]
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert service["configs"] == [
            {"source": "bridge", "target": "/etc/ocpp-bridge/bridge.toml"}
        ]  # the image's default command reads it
        assert "PGPASSWORD" in service["environment"]
    assert services["bridge-a"]["ports"] != services["bridge-b"]["ports"]
    text = compose["configs"]["bridge"]["content"]
    assert 'store = "postgresql://bridge@postgres:5432/ocpp_bridge"' in text
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "ocpp_bridge"
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    env = {"OCPP_BRIDGE_BRIDGE__STORE": pg_url, "OCPP_BRIDGE_CSMS__PASSWORD": "secret-of-16+chars"}
    result = CliRunner().invoke(app, ["check", "--config", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    grace = int(services["bridge-a"]["stop_grace_period"].rstrip("s"))
    shutdown = re.search(r"shutdown_timeout = (\d+)", text)
    assert grace > (int(shutdown.group(1)) if shutdown else 10)
