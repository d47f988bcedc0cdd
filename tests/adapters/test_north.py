"""The CSMS-facing client: URL, subprotocol checks, and reconnection with back-off against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve

from adapters.config import CsmsSection
from adapters.ocpp.north import CsmsConnector, CsmsUnavailable, NorthLink, Pacer
from bridge.north.backoff import BackoffPolicy


class EventLog:
    """A stand-in for a bound structlog logger that keeps the events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _log(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    info = warning = error = _log

    def names(self) -> list[str]:
        return [event for event, _ in self.events]


def connector(url: str) -> CsmsConnector:
    csms = CsmsSection(url=url, connect_timeout=2)
    return CsmsConnector(csms, lambda _: None, None, Pacer(1000, 100))


async def test_station_id_is_percent_encoded_into_the_url() -> None:
    assert (
        connector("ws://127.0.0.1:1/ocpp").url_for("RDAM 123") == "ws://127.0.0.1:1/ocpp/RDAM%20123"
    )


async def test_a_csms_that_selects_no_subprotocol_is_refused() -> None:
    closed = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()
        closed.set()

    async with serve(handler, "127.0.0.1", 0) as server:  # a server that negotiates nothing
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(CsmsUnavailable, match=r"did not accept subprotocol ocpp2\.0\.1"):
            await connector(f"ws://127.0.0.1:{port}/ocpp").connect("CS1")
        async with asyncio.timeout(5):
            await closed.wait()


async def test_http_status_of_a_refusal_is_kept() -> None:
    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()

    def not_found(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(404, "no such station\n")

    async with serve(handler, "127.0.0.1", 0, process_request=not_found) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(CsmsUnavailable) as caught:
            await connector(f"ws://127.0.0.1:{port}/ocpp").connect("CS1")
        assert caught.value.status == 404


async def test_north_link_reconnects_with_doubling_back_off_after_a_csms_restart() -> None:
    connected = asyncio.Queue[str]()

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        await connected.put(connection.request.path)
        await connection.wait_closed()

    server = await serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    port = next(iter(server.sockets)).getsockname()[1]
    log = EventLog()
    link = NorthLink(
        "CS1",
        connector(f"ws://127.0.0.1:{port}/ocpp"),
        BackoffPolicy(wait_minimum=0.05, random_range=0.0, repeat_times=3),
        log,
        rand=lambda: 0.0,
    )
    sessions = asyncio.Queue[ClientConnection]()

    async def session(connection: ClientConnection) -> None:
        await sessions.put(connection)
        await connection.wait_closed()

    task = asyncio.create_task(link.run(session))
    try:
        async with asyncio.timeout(10):
            assert await connected.get() == "/ocpp/CS1"
            await sessions.get()
            # the CSMS goes away: the link must notice and retry with growing waits
            server.close()
            await server.wait_closed()
            while log.names().count("csms.connect_failed") < 3:
                await asyncio.sleep(0.02)
            server = await serve(handler, "127.0.0.1", port, subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
            assert await connected.get() == "/ocpp/CS1"
            await sessions.get()
        waits = [fields["delay"] for event, fields in log.events if event == "csms.reconnect_wait"]
        assert waits[:4] == [0.05, 0.1, 0.2, 0.4]
        assert link.connections == 2
    finally:
        task.cancel()
        server.close()
        await server.wait_closed()


async def test_pacer_spreads_attempts_beyond_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []
    pacer = Pacer(rate=10, burst=2, rand=lambda: 0.5, clock=lambda: now[0])

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    original = asyncio.sleep
    asyncio.sleep = fake_sleep  # type: ignore[assignment]
    try:
        for _ in range(4):
            await pacer.wait_turn()
    finally:
        asyncio.sleep = original
    assert slept == pytest.approx([0.15, 0.25])
