"""Helpers for end-to-end tests: the real bridge runtime, in process, on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from adapters.config import BridgeConfig
from adapters.runtime import Runtime
from adapters.schemas import OfficialSchemas

_SCHEMAS = OfficialSchemas()


def bridge_config(csms_url: str, stations: list[dict[str, Any]], **sections: Any) -> BridgeConfig:
    data: dict[str, Any] = {
        "bridge": {"store": ":memory:", "health": "", "shutdown_timeout": 5},
        "csms": {"url": csms_url, "connect_timeout": 5},
        "south": {"listen": "127.0.0.1:0"},
        "stations": stations,
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return BridgeConfig.model_validate(data)


@contextlib.asynccontextmanager
async def running_bridge(config: BridgeConfig) -> AsyncIterator[Runtime]:
    runtime = Runtime(config, schemas=_SCHEMAS)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def south_url(runtime: Runtime, scheme: str = "ws") -> str:
    assert runtime.south_address is not None
    return f"{scheme}://127.0.0.1:{runtime.south_address[1]}/ocpp"


async def raw_upgrade(
    runtime: Runtime, station: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A charger of raw bytes (RFC 6455 §4.1, the RFC's sample key) upgraded to OCPP 2.0.1 on the
    bridge's south listener: the socket once the 101 is read, for tests that must misbehave below
    what a WebSocket library lets them do."""
    assert runtime.south_address is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", runtime.south_address[1])
    writer.write(
        f"GET /ocpp/{station} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n".encode()
    )
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer
