"""`[bridge] store` naming a PostgreSQL database: a bad URL or an unreachable server is one line and exit
status 2 (`check` and `run`), a reachable one is reported by `check`; the URL is no path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.config import load_config

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))


def _config(tmp_path: Path, store: str) -> Path:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\nstore = "{store}"\nhealth = ""\n'
        '[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n[south]\nlisten = "127.0.0.1:0"\n'
        '[[stations]]\nid = "CP16"\nprotocol = "ocpp1.6"\n'
    )
    return config


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "OCPP_BRIDGE_"))}
    return subprocess.run([EXECUTABLE, *args], capture_output=True, text=True, timeout=60, env=env)


def _closed_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("store", "reason"),
    [
        ("postgresql://bridge@127.0.0.1:port/db", "not a valid postgresql:// URL"),
        ("postgresql://bridge:pw@127.0.0.1/db", "a password in the URL is a secret in the file"),
        ("postgres://bridge@127.0.0.1:5432/", "the URL names no database"),
    ],
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_bad_store_url_is_one_line_and_exit_2(
    tmp_path: Path, store: str, reason: str, command: str
) -> None:
    config = _config(tmp_path, store)
    completed = _cli(command, "--config", str(config))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{config}:2: bridge.store: {reason}"), lines
    assert "Traceback" not in completed.stderr and ":pw@" not in completed.stderr


@pytest.mark.parametrize("command", ["check", "run"])
def test_an_unreachable_store_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    url = f"postgresql://bridge@127.0.0.1:{_closed_port()}/bridge"
    config = _config(tmp_path, url)
    completed = _cli(command, "--config", str(config))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{config}:2: bridge.store: {url}: cannot connect: ")
    assert "Connection refused" in lines[0]


def test_check_reports_a_reachable_store(tmp_path: Path, pg_url: str) -> None:
    config = _config(tmp_path, pg_url)
    completed = _cli("check", "--config", str(config))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1].startswith(f"store: {pg_url}: reachable, PostgreSQL 1")
    assert "schema not created yet" in completed.stdout  # check writes nothing


def test_a_store_url_is_not_a_path_relative_to_the_file(tmp_path: Path) -> None:
    url = "postgresql://bridge@db.example:5432/bridge?sslmode=verify-full"
    assert load_config(_config(tmp_path, url), {}).bridge.store == url
    override = {"OCPP_BRIDGE_BRIDGE__STORE": "postgresql://bridge@other:5432/bridge"}
    assert (
        load_config(_config(tmp_path, url), override).bridge.store
        == override["OCPP_BRIDGE_BRIDGE__STORE"]
    )


def test_leases_need_a_postgresql_store_and_serve_iec104_stations(tmp_path: Path) -> None:
    config = _config(tmp_path, str(tmp_path / "bridge.db"))
    config.write_text(config.read_text().replace("[bridge]\n", "[bridge]\nleases = true\n"))
    completed = _cli("check", "--config", str(config))
    assert completed.returncode == 2
    assert "bridge.leases: needs a PostgreSQL store" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    url = f"postgresql://bridge@127.0.0.1:{_closed_port()}/bridge"
    config.write_text(
        config.read_text().replace(str(tmp_path / "bridge.db"), url)
        + '[[stations]]\nid = "CP104"\nprotocol = "iec104"\nhost = "127.0.0.1"\n'
        'mapping = "gb-dc-charger"\n'
    )
    completed = _cli("check", "--config", str(config))
    assert "bridge.leases" not in completed.stderr  # 104 stations are spread over the replicas
    assert "store: " in completed.stderr  # what is left: the store is unreachable
