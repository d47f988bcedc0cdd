"""Helpers for end-to-end tests: the real bridge runtime, in process, on 127.0.0.1 port 0."""

from __future__ import annotations

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
