"""adapters.ocpp.ws_direct's own server and client at their edges: the opening handshake's timeout, the
server closing, a refused handshake, HTTP CONNECT proxies (and SOCKS refused at start-up), and the frame
splitter fed any bytes at all.

The peers are websockets' own client and server (an independent RFC 6455 implementation), raw sockets
with the bytes spelled out, and a CONNECT proxy written here from RFC 9110 §9.3.6.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.utils import accept_key

from adapters.cli.main import app
from adapters.ocpp.ws_direct import (
    DirectServerConnection,
    ProxyRefused,
    connect,
    proxy_for,
    serve,
)

HOST = "127.0.0.1"
UPGRADE = (
    b"GET /ocpp/CP HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    async with asyncio.timeout(5):
        while chunk := await reader.read(65536):
            data += chunk
    return data


# --- the server ----------------------------------------------------------------------------------


async def test_a_client_that_never_finishes_its_request_is_cut_off_at_the_open_timeout() -> None:
    async def handler(connection: DirectServerConnection) -> None:
        raise AssertionError("never opened")

    async with await serve(handler, HOST, 0, open_timeout=0.2) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(UPGRADE[:30])  # and nothing more
        assert await _read_until_closed(reader) == b""  # closed without an answer
        writer.close()


async def test_a_refused_handshake_is_answered_and_the_handler_never_runs() -> None:
    ran: list[DirectServerConnection] = []

    async def handler(connection: DirectServerConnection) -> None:
        ran.append(connection)

    def refuse(connection: DirectServerConnection, request: Any) -> Any:
        response = connection.respond(401, "authentication required\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="test"'
        return response

    async with await serve(handler, HOST, 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidStatus) as refused:
            await websockets_connect(f"ws://{HOST}:{port}/ocpp/CP", open_timeout=5)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"] == 'Basic realm="test"'
    assert ran == []


async def test_a_request_line_websockets_cannot_read_is_answered_400() -> None:
    async def handler(connection: DirectServerConnection) -> None:
        raise AssertionError("never opened")

    async with await serve(handler, HOST, 0) as server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"HELLO\r\nHost: x\r\n\r\n")  # no method, path or version
        answer = await _read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        writer.close()


async def test_closing_the_server_closes_every_connection_with_1001_and_waits_for_handlers() -> (
    None
):
    finished: list[int | None] = []

    async def handler(connection: DirectServerConnection) -> None:
        connection.listen(lambda message: None)
        await connection.wait_closed()
        await asyncio.sleep(0.05)  # a session's own clean-up
        finished.append(connection.close_code)

    server = await serve(handler, HOST, 0, close_timeout=1)
    port = server.sockets[0].getsockname()[1]
    clients = [await websockets_connect(f"ws://{HOST}:{port}/ocpp/CP") for _ in range(3)]
    async with asyncio.timeout(5):
        while len(server.connections) < 3:
            await asyncio.sleep(0.01)
    server.close()
    async with asyncio.timeout(5):
        await server.wait_closed()
    assert finished == [1001, 1001, 1001]
    for client in clients:
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.protocol.close_code == 1001


async def test_the_subprotocol_is_the_one_selected_and_none_when_nothing_fits() -> None:
    chosen: list[str | None] = []

    async def handler(connection: DirectServerConnection) -> None:
        chosen.append(connection.subprotocol)

    def select(connection: DirectServerConnection, offered: Any) -> Any:
        assert connection.request is not None and connection.request.path == "/ocpp/CP"
        return "ocpp1.6" if "ocpp1.6" in offered else None

    async with await serve(handler, HOST, 0, select_subprotocol=select) as server:
        port = server.sockets[0].getsockname()[1]
        for offered in (["ocpp2.0.1", "ocpp1.6"], ["ocpp2.0.1"]):
            async with websockets_connect(
                f"ws://{HOST}:{port}/ocpp/CP",
                subprotocols=offered,  # type: ignore[arg-type]
            ) as client:
                expected = "ocpp1.6" if "ocpp1.6" in offered else None
                assert client.subprotocol == expected
                await client.wait_closed()
    assert chosen == ["ocpp1.6", None]


# --- the client ----------------------------------------------------------------------------------


async def test_a_server_that_never_answers_the_upgrade_times_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError):
            await connect(f"ws://{HOST}:{port}/ocpp/CP", open_timeout=0.2)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_client_sends_its_headers_and_subprotocols_and_learns_the_choice() -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        seen.append((connection.request.headers.get("Authorization"), connection.subprotocol))
        await connection.send("hello")
        await connection.wait_closed()

    async with websockets_serve(handler, HOST, 0, subprotocols=["ocpp2.0.1"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        connection = await connect(
            f"ws://{HOST}:{port}/ocpp/CP",
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            additional_headers={"Authorization": "Basic Q1A6cw=="},
            compression=None,
        )
        got: list[str] = []
        connection.listen(got.append)
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.01)
        assert connection.subprotocol == "ocpp2.0.1"
        await connection.close()
    assert got == ["hello"]
    assert seen == [("Basic Q1A6cw==", "ocpp2.0.1")]


class ConnectProxy:
    """An HTTP proxy that answers CONNECT (RFC 9110 §9.3.6) and then relays bytes both ways; with
    `credentials`, it wants them in `Proxy-Authorization: Basic` and answers 407 otherwise."""

    def __init__(self, credentials: str | None = None, context: ssl.SSLContext | None = None):
        self.credentials = credentials
        self.context = context
        self.requests: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        expected = (
            "Proxy-Authorization: Basic " + base64.b64encode(self.credentials.encode()).decode()
            if self.credentials is not None
            else None
        )
        if method != "CONNECT" or (expected is not None and expected not in head.decode()):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        relays = [
            asyncio.create_task(self._relay(reader, upstream_writer)),
            asyncio.create_task(self._relay(upstream_reader, writer)),
        ]
        self._tasks.update(relays)
        await asyncio.gather(*relays)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._serve, HOST, 0, ssl=self.context)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def echo_server(context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    async def handler(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(f"re:{message}")

    async with websockets_serve(handler, HOST, 0, ssl=context) as server:
        yield server.sockets[0].getsockname()[1]


async def _echo_once(connection: Any) -> str:
    got: list[str] = []
    connection.listen(got.append)
    connection.write_text("ping?")
    async with asyncio.timeout(5):
        while not got:
            await asyncio.sleep(0.01)
    await connection.close()
    return got[0]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_connection_through_an_http_proxy_with_credentials_from_its_url() -> None:
    proxy = ConnectProxy(credentials="us er:p@ss")
    async with echo_server() as port, proxy.running() as proxy_port:
        connection = await connect(
            f"ws://{HOST}:{port}/ocpp/CP", proxy=f"http://us%20er:p%40ss@{HOST}:{proxy_port}"
        )
        assert await _echo_once(connection) == "re:ping?"
    assert proxy.requests[0].startswith(f"CONNECT {HOST}:{port} HTTP/1.1\r\n".encode())


async def test_a_proxy_that_refuses_is_an_os_error_naming_its_answer() -> None:
    proxy = ConnectProxy(credentials="user:secret")
    async with echo_server() as port, proxy.running() as proxy_port:
        with pytest.raises(ProxyRefused, match="407"):
            await connect(f"ws://{HOST}:{port}/ocpp/CP", proxy=f"http://{HOST}:{proxy_port}")


async def test_wss_through_an_http_proxy_verifies_the_servers_certificate(ca: trustme.CA) -> None:
    proxy = ConnectProxy()
    async with echo_server(_server_context(ca)) as port, proxy.running() as proxy_port:
        connection = await connect(
            f"wss://localhost:{port}/ocpp/CP",
            proxy=f"http://{HOST}:{proxy_port}",
            ssl=_client_context(ca),
        )
        assert await _echo_once(connection) == "re:ping?"
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(
                f"wss://localhost:{port}/ocpp/CP",
                proxy=f"http://{HOST}:{proxy_port}",
                ssl=ssl.create_default_context(),  # does not trust the test CA
            )


def test_wss_through_an_http_proxy_on_uvloop(ca: trustme.CA) -> None:
    """The bridge's default loop: its transports are not asyncio.Transport subclasses."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> str:
        proxy = ConnectProxy(credentials="u:p")
        async with echo_server(_server_context(ca)) as port, proxy.running() as proxy_port:
            connection = await connect(
                f"wss://localhost:{port}/ocpp/CP",
                proxy=f"http://u:p@{HOST}:{proxy_port}",
                ssl=_client_context(ca),
            )
            return await _echo_once(connection)

    assert uvloop.run(main()) == "re:ping?"


async def test_an_https_proxy(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # the proxy's own certificate is checked against the default trust store: the test CA's here
    default_context = ssl.create_default_context

    def trusting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = default_context(*args, **kwargs)
        ca.configure_trust(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", trusting)
    proxy = ConnectProxy(context=_server_context(ca))
    async with echo_server() as port, proxy.running() as proxy_port:
        connection = await connect(
            f"ws://{HOST}:{port}/ocpp/CP", proxy=f"https://localhost:{proxy_port}"
        )
        assert await _echo_once(connection) == "re:ping?"


def test_the_environments_proxy_follows_websockets_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "socks_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert proxy_for("ws://csms.example:8080/ocpp") is None
    monkeypatch.setenv("http_proxy", "http://plain:3128")
    monkeypatch.setenv("https_proxy", "http://secure:3128")
    assert proxy_for("ws://csms.example/ocpp") == "http://secure:3128"
    assert proxy_for("wss://csms.example/ocpp") == "http://secure:3128"
    monkeypatch.setenv("wss_proxy", "http://websocket:3128")
    assert proxy_for("wss://csms.example/ocpp") == "http://websocket:3128"
    monkeypatch.setenv("no_proxy", "csms.example")
    assert proxy_for("wss://csms.example/ocpp") is None


def test_a_socks_proxy_for_the_csms_is_refused_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "ws_proxy", "wss_proxy", "socks_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("https_proxy", "socks5h://127.0.0.1:1080")
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[bridge]\nhealth = ""\n[csms]\nurl = "ws://csms.example:9/ocpp"\n'
        '[south]\nlisten = "127.0.0.1:0"\n[[stations]]\nid = "CP1"\nprotocol = "ocpp2.0.1"\n'
    )
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"{config}:")
    assert "csms.url: proxy socks5h:// is not supported" in lines[0]


# --- the frame splitter: any bytes at all -------------------------------------------------------


class _Transport:
    """Enough of an asyncio transport for a server connection fed by hand."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.lists(st.text(max_size=30), max_size=3),
    noise=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
async def test_any_bytes_after_the_handshake_are_messages_or_a_close_never_an_exception(
    prefix: list[str], noise: bytes, cuts: list[int]
) -> None:
    server = await serve(lambda connection: asyncio.sleep(0), HOST, 0, max_size=200)
    try:
        connection = DirectServerConnection(server)
        transport = _Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        received: list[str] = []
        connection.listen(received.append)
        stream = UPGRADE + b"".join(_masked(Opcode.TEXT, text.encode()) for text in prefix) + noise
        points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
        for start, end in itertools.pairwise(points):
            connection.data_received(stream[start:end])
        for _ in range(1000):  # the turns it still needs
            if not connection.holds_unread:
                break
            await asyncio.sleep(0)
        connection.eof_received()
        assert all(isinstance(message, str) for message in received)
        assert received[: len(prefix)] == prefix[: len(received)]
        head, _, frames = bytes(transport.written).partition(b"\r\n\r\n")
        assert (
            head.startswith(b"HTTP/1.1 101 ")
            and accept_key("dGhlIHNhbXBsZSBub25jZQ==").encode() in head
        )
        reader = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
        reader.receive_data(frames)
        closes = [
            Close.parse(event.data).code
            for event in reader.events_received()
            if isinstance(event, Frame) and event.opcode is Opcode.CLOSE
        ]
        # the peer's bytes ended (eof): the connection is closed, with a close frame when it failed
        assert connection.protocol.state is State.CLOSED
        assert set(closes) <= {
            CloseCode.PROTOCOL_ERROR,
            CloseCode.UNSUPPORTED_DATA,
            CloseCode.INVALID_DATA,
            CloseCode.MESSAGE_TOO_BIG,
            CloseCode.NORMAL_CLOSURE,
            CloseCode.NO_STATUS_RCVD,
            *range(1000, 5000),
        }
        connection.connection_lost(None)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_connection_accepted_as_the_server_closes_is_refused_503_not_served() -> None:
    """asyncio runs a new connection's `connection_made` a loop turn after accepting it: `close()` can
    come in between. That connection was not among those closed with 1001, and its handshake, read
    next, was accepted: its session ran on a closed server, and nobody closed it (in the replica fault
    run, a 1.6 charger that reached a replica as it was stopped kept it from stopping for its whole
    shutdown_timeout: bridge.shutdown_timeout). Now a handshake read once the server is closing is
    answered 503, as websockets' own server does."""
    served: list[str] = []

    async def handler(connection: DirectServerConnection) -> None:
        served.append("served")
        connection.listen(lambda message: None)
        await connection.wait_closed()

    server = await serve(handler, HOST, 0, close_timeout=1)
    server.close()
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    await loop.connect_accepted_socket(lambda: DirectServerConnection(server), ours)
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(5):
            await websockets_connect("ws://127.0.0.1/ocpp/CP", sock=theirs)
    assert refused.value.response.status_code == 503
    async with asyncio.timeout(5):
        await server.wait_closed()
    assert served == []
    theirs.close()
