"""Issue 18 items 1 and 7: every start-up failure is one line (what and why) with exit status 2, and
`check` runs every check `run` makes except binding."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app

runner = CliRunner()

CSMS = '[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n'
STATION_201 = '[[stations]]\nid = "CP1"\nprotocol = "ocpp2.0.1"\n'


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "bridge.toml"
    config.write_text(text)
    return config


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_a_busy_charger_port_is_one_line_and_exit_2(tmp_path: Path, busy_port: int) -> None:
    config = _write(
        tmp_path,
        f'[bridge]\nhealth = ""\n{CSMS}[south]\nlisten = "127.0.0.1:{busy_port}"\n{STATION_201}',
    )
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert _one_line(result.output) == (
        f"south.listen: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    )


def test_a_busy_iec104_port_is_one_line_and_exit_2(tmp_path: Path, busy_port: int) -> None:
    config = _write(
        tmp_path,
        f'[bridge]\nhealth = ""\nstore = ":memory:"\n{CSMS}[south]\nlisten = "127.0.0.1:0"\n'
        f'iec104_listen = "127.0.0.1:{busy_port}"\n'
        '[[stations]]\nid = "GB1"\nprotocol = "iec104"\ndial = "in"\nmapping = "gb-dc-charger"\n',
    )
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert _one_line(result.output) == (
        f"south.iec104_listen: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    )


def test_an_address_not_on_this_machine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine
    config = _write(
        tmp_path, f'[bridge]\nhealth = ""\n{CSMS}[south]\nlisten = "192.0.2.1:0"\n{STATION_201}'
    )
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert _one_line(result.output) == (
        "south.listen: cannot listen on 192.0.2.1:0: Cannot assign requested address"
    )


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_host_name_that_does_not_resolve_is_refused(tmp_path: Path, command: str) -> None:
    config = _write(
        tmp_path,
        f'[bridge]\nhealth = ""\n{CSMS}[south]\nlisten = "no-such-host.invalid:9100"\n{STATION_201}',
    )
    result = runner.invoke(app, [command, "--config", str(config)])
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert line.startswith(
        f"{config}:6: south.listen: host 'no-such-host.invalid' does not resolve"
    )


@pytest.mark.parametrize("command", ["run", "check"])
def test_what_run_refuses_check_refuses(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "missing"
    config = _write(
        tmp_path,
        f'[bridge]\nhealth = "127.0.0.1:9100"\nstore = "{missing}/bridge.db"\n'
        '[csms]\nurl = "wss://127.0.0.1:9/ocpp"\nsecurity_profile = 2\n'
        f'ca_file = "{missing}/ca.pem"\n'
        '[south]\nlisten = "0.0.0.0:9100"\n'
        '[[stations]]\nid = "CP16"\nprotocol = "ocpp1.6"\n',
    )
    result = runner.invoke(
        app, [command, "--config", str(config)], env={"OCPP_BRIDGE_CSMS__PASSWORD": "x" * 16}
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output
    assert any(
        line.startswith(f"{config}:7: csms.ca_file: cannot load CA file {missing}/ca.pem")
        for line in lines
    ), lines
    assert (
        f"{config}:3: bridge.store: {missing}/bridge.db: its folder {missing} does not exist"
        in lines
    )
    assert (
        f"{config}:2: bridge.health: 127.0.0.1:9100 is also [south] listen; give each its own port"
        in lines
    )
    assert len(lines) == 3


@pytest.mark.parametrize("command", ["run", "check"])
def test_zero_stations_are_refused(tmp_path: Path, command: str) -> None:
    config = _write(tmp_path, f'[bridge]\nhealth = ""\n{CSMS}[south]\nlisten = "127.0.0.1:0"\n')
    result = runner.invoke(app, [command, "--config", str(config)])
    assert result.exit_code == 2
    assert _one_line(result.output) == (
        f"{config}: stations: none configured; add a [[stations]] table"
    )
