"""The `ocpp-bridge` command: contract names, exit codes, and a real process stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ocpp.v201 import call
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.ops.event_loop import uvloop_available
from tests.peers import connected_charger, running_csms

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))
runner = CliRunner()


def test_help_lists_the_contracts_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "demo", "check"):
        assert command in result.output


def test_run_help_documents_the_config_option() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output
    assert "OCPP_BRIDGE_" in result.output


def test_a_bad_config_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[csms]\nurl = "http://nope"\n[south]\nlisten = "127.0.0.1:0"\n')
    completed = subprocess.run(
        [EXECUTABLE, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OCPP_BRIDGE_SOUTH__PING_TIMEOUT": "-1"},
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert f"{config}:2: csms.url: must be a ws:// or wss:// URL" in lines
    assert (
        "environment OCPP_BRIDGE_SOUTH__PING_TIMEOUT: south.ping_timeout: Input should be greater than 0"
        in lines
    )
    assert "south.listening" not in completed.stderr


def test_check_accepts_a_good_config(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(
        '[csms]\nurl = "ws://127.0.0.1:9000/ocpp"\n[[stations]]\nid = "A"\nprotocol = "ocpp2.0.1"\n'
    )
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 0
    assert "valid (1 stations)" in result.output


def test_a_16_station_is_accepted_and_its_broken_device_model_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "v16.toml"
    station = (
        '[csms]\nurl = "ws://127.0.0.1:9000/ocpp"\n[[stations]]\nid = "A"\nprotocol = "ocpp1.6"\n'
    )
    config.write_text(station)
    assert runner.invoke(app, ["check", "--config", str(config)]).exit_code == 0
    table = tmp_path / "keys.yaml"
    table.write_text("keys:\n  HeartbeatInterval:\n    component: [unclosed\n")
    config.write_text(station + f'device_model = "{table}"\n')
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{table}:" in result.output
    assert "'A'" in result.output


async def _read_json_line(stream: asyncio.StreamReader, event: str) -> dict[str, object]:
    async with asyncio.timeout(30):
        while True:
            line = await stream.readline()
            assert line, f"process ended before logging {event}"
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                return record  # type: ignore[no-any-return]


async def test_run_serves_then_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    async with running_csms() as csms:
        config = tmp_path / "bridge.toml"
        config.write_text(
            f'[bridge]\nstore = "{tmp_path / "b.db"}"\nhealth = ""\n'
            f'[csms]\nurl = "{csms.url}"\n'
            '[south]\nlisten = "127.0.0.1:0"\n'
            '[[stations]]\nid = "CS-RUN"\nprotocol = "ocpp2.0.1"\n'
        )
        process = await asyncio.create_subprocess_exec(
            EXECUTABLE, "run", "--config", str(config), stderr=asyncio.subprocess.PIPE
        )
        try:
            assert process.stderr is not None
            listening = await _read_json_line(process.stderr, "south.listening")
            assert listening["level"] == "info"
            started = await _read_json_line(process.stderr, "bridge.started")
            assert started["event_loop"] == ("uvloop" if uvloop_available() else "asyncio")
            url = f"ws://127.0.0.1:{listening['port']}/ocpp"
            async with connected_charger(url, "CS-RUN") as (charger, connection, _):
                boot = await charger.call(
                    call.BootNotification(
                        charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
                    )
                )
                assert boot.status == "Accepted"
                session = await csms.session("CS-RUN")
                connected = await _read_json_line(process.stderr, "csms.connected")
                # every station log line is bound with station id, side and protocol version
                assert (connected["station_id"], connected["side"], connected["protocol"]) == (
                    "CS-RUN",
                    "north",
                    "ocpp2.0.1",
                )
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    assert await process.wait() == 0
                    await connection.wait_closed()
                    await session.closed.wait()
                assert connection.close_code == 1001
                assert session.connection.close_code == 1001
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def test_a_store_that_cannot_be_opened_is_refused_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\nstore = "{tmp_path}/missing/folder/bridge.db"\nhealth = ""\n'
        '[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n[south]\nlisten = "127.0.0.1:0"\n'
        '[[stations]]\nid = "A"\nprotocol = "ocpp1.6"\n'
    )
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "bridge.store:" in result.output
    assert "missing/folder/bridge.db" in result.output


def test_issue_18_the_mappings_help_names_every_command() -> None:
    group = next(g for g in app.registered_groups if g.name == "mappings")
    for command in ("list", "validate", "explain", "replay", "JSON Schema"):
        assert command in (group.help or ""), command
