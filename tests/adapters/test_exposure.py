"""`ocpp-bridge check` warns about a configuration open to anyone on the network (issue 17 item 6):
chargers without a password on a non-loopback listener, security profile 0 toward another host."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.config import BridgeConfig
from adapters.ops.exposure import exposure_warnings, is_loopback

runner = CliRunner()


def _check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    config = tmp_path / "bridge.toml"
    config.write_text(text)
    result = runner.invoke(app, ["check", "--config", str(config)], env=env)
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    return result.exit_code, warnings


def _config(listen: str, csms: str = "ws://127.0.0.1:9000/ocpp", extra: str = "") -> str:
    return (
        f'[csms]\nurl = "{csms}"\n[south]\nlisten = "{listen}"\n{extra}'
        '[[stations]]\nid = "OPEN-1"\nprotocol = "ocpp2.0.1"\n'
        '[[stations]]\nid = "LOCKED"\nprotocol = "ocpp1.6"\n'
        '[[stations]]\nid = "GB104"\nprotocol = "iec104"\nhost = "10.0.0.9"\n'
        'mapping = "gb-dc-charger"\n'
    )


PASSWORD = {"OCPP_BRIDGE_STATIONS__LOCKED__PASSWORD": "a-good-long-password"}


def test_stations_without_password_on_a_public_listener_are_named(tmp_path: Path) -> None:
    code, warnings = _check(tmp_path, _config("0.0.0.0:9100"), PASSWORD)
    assert code == 0
    (warning,) = warnings
    assert warning.startswith("warning: south.listen: 0.0.0.0:9100 is not a loopback address")
    assert "1 station(s) have no password ('OPEN-1')" in warning
    assert "LOCKED" not in warning and "GB104" not in warning  # a password; no OCPP station


def test_loopback_listeners_and_client_certificates_are_not_warned_about(tmp_path: Path) -> None:
    assert _check(tmp_path, _config("127.0.0.1:9100")) == (0, [])
    assert _check(tmp_path, _config("[::1]:9100")) == (0, [])
    assert _check(tmp_path, _config("localhost:9100")) == (0, [])
    config = BridgeConfig.model_validate(
        {
            "csms": {"url": "ws://127.0.0.1:9000/ocpp"},
            "south": {
                "listen": "0.0.0.0:9100",
                "cert_file": "c.pem",
                "key_file": "k.pem",
                "ca_file": "ca.pem",
                "require_client_cert": True,
            },
            "stations": [{"id": "OPEN-1", "protocol": "ocpp2.0.1"}],
        }
    )
    assert exposure_warnings(config) == []  # every charger shows a certificate


def test_profile_0_toward_another_host_is_warned_about(tmp_path: Path) -> None:
    code, warnings = _check(
        tmp_path, _config("127.0.0.1:9100", csms="ws://csms.example.com/ocpp"), PASSWORD
    )
    assert code == 0
    (warning,) = warnings
    assert warning.startswith("warning: csms.security_profile: 0 toward csms.example.com")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("bridge.local", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
