"""Issue 18 item 10: the container's health check asks the configured [bridge] health, not port 8409."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from adapters.ops.health import HealthServer
from adapters.ops.healthcheck import health_url, main
from adapters.ops.metrics import BridgeMetrics


def _config(tmp_path: Path, health: str) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(
        f'[bridge]\nhealth = "{health}"\n[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n'
        '[[stations]]\nid = "CP1"\nprotocol = "ocpp2.0.1"\n'
    )
    return path


def test_wildcard_hosts_are_asked_on_loopback() -> None:
    assert health_url("0.0.0.0:9000") == "http://127.0.0.1:9000/health"
    assert health_url("[::]:9000") == "http://[::1]:9000/health"
    assert health_url("10.1.2.3:8409") == "http://10.1.2.3:8409/health"


async def test_the_configured_port_is_asked(tmp_path: Path) -> None:
    server = HealthServer("127.0.0.1:0", BridgeMetrics(), lambda: {"config": None})
    _, port = await server.start()
    try:
        assert await asyncio.to_thread(main, [str(_config(tmp_path, f"0.0.0.0:{port}"))]) == 0
    finally:
        await server.close()


def test_nothing_answering_is_unhealthy(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main([str(_config(tmp_path, f"127.0.0.1:{port}"))]) == 1


def test_health_off_has_nothing_to_ask(tmp_path: Path) -> None:
    assert main([str(_config(tmp_path, ""))]) == 0
    assert main([str(tmp_path / "missing.toml")]) == 1
