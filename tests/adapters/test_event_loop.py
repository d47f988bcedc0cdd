"""`[bridge] event_loop`: which loop runs the bridge, and what is tuned on the standard one."""

from __future__ import annotations

import asyncio
from asyncio import sslproto
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import config as config_module
from adapters.config import ConfigError, load_config
from adapters.ops import event_loop

HAS_UVLOOP = event_loop.uvloop_available()


@pytest.fixture
def tls_buffer() -> Iterator[None]:
    """Restores asyncio's TLS read buffer size, which the standard-loop factory bounds process-wide."""
    saved = sslproto.SSLProtocol.max_size  # type: ignore[attr-defined]
    yield
    sslproto.SSLProtocol.max_size = saved  # type: ignore[attr-defined]


def test_auto_is_uvloop_when_installed() -> None:
    assert event_loop.resolve("auto") == ("uvloop" if HAS_UVLOOP else "asyncio")
    assert event_loop.resolve("asyncio") == "asyncio"


@pytest.mark.usefixtures("tls_buffer")
def test_the_standard_loop_gets_a_bounded_tls_read_buffer() -> None:
    sslproto.SSLProtocol.max_size = 256 * 1024  # type: ignore[attr-defined]
    factory = event_loop.loop_factory("asyncio")
    assert factory is asyncio.new_event_loop
    assert sslproto.SSLProtocol.max_size == event_loop.TLS_READ_BUFFER  # type: ignore[attr-defined]


@pytest.mark.usefixtures("tls_buffer")
@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_run_runs_on_the_chosen_loop(choice: event_loop.EventLoopChoice) -> None:
    if choice == "uvloop" and not HAS_UVLOOP:
        pytest.skip("uvloop is not installed")

    async def which() -> str:
        await asyncio.sleep(0)
        return event_loop.loop_name()

    assert event_loop.run(which(), choice) == choice


def test_uvloop_where_it_is_missing_is_refused_with_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_module, "uvloop_available", lambda: False)
    path = tmp_path / "bridge.toml"
    path.write_text('[bridge]\nevent_loop = "uvloop"\n[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, {})
    assert "bridge.event_loop" in str(refused.value)
    assert "uvloop is not installed" in str(refused.value)
    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        event_loop.resolve("uvloop")
