"""adapters.ocpp.ws_direct: messages handed over on arrival, the frame fast path, `write_text`.

The peers are websockets' own protocol objects, clients and servers (an independent implementation of
RFC 6455) and raw sockets that send hand-made frames, split wherever a test wants them split.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import itertools
import os
import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect as websockets_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri
from websockets.utils import accept_key

from adapters.ocpp.ws_direct import (
    BACKLOG,
    BYTE_BUDGET,
    FRAME_BUDGET,
    PARSER_BUDGET,
    DirectClientConnection,
    DirectServerConnection,
    connect,
    serve,
)

HOST = "127.0.0.1"


class FakeTransport:
    """Enough of an asyncio transport for a connection fed by hand."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _open_client(max_size: int = 2**20) -> tuple[DirectClientConnection, FakeTransport, bytes]:
    """A client connection whose handshake request was written; returns the 101 response to feed."""
    connection = DirectClientConnection(
        parse_uri("ws://127.0.0.1/ocpp/CP"), max_size=max_size, compression=None
    )
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    assert connection.request is not None  # the upgrade request, written
    key = connection.request.headers["Sec-WebSocket-Key"]
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()
    transport.written.clear()
    return connection, transport, response


def _frames_written(data: bytes | bytearray, *, by_client: bool) -> list[Frame]:
    """The frames in what a connection wrote, read by websockets' protocol as its peer would."""
    reader = Protocol(Side.SERVER if by_client else Side.CLIENT, state=State.OPEN, max_size=None)
    reader.receive_data(bytes(data))
    return [event for event in reader.events_received() if isinstance(event, Frame)]


def _unmasked(opcode: Opcode, data: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    frame = Frame(opcode, data, fin).serialize(mask=False)
    return (
        bytes((frame[0] | (0x40 if rsv1 else 0),)) + frame[1:]
    )  # websockets won't set rsv1 itself


def _masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


async def _settle(connection: DirectClientConnection | DirectServerConnection) -> None:
    """Let the connection take the turns it still needs for what it read (module rules: turns)."""
    for _ in range(100_000):
        if not connection.holds_unread:
            return
        await asyncio.sleep(0)
    raise AssertionError("the connection never finished what it read")


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# --- messages and frames, fed by hand -----------------------------------------------------------

SIZES = st.sampled_from([0, 1, 2, 125, 126, 127, 300, 65535, 65536, 70000])


@st.composite
def peer_items(draw: st.DrawFn) -> tuple[str, Any, int]:
    # no binary message: OCPP-J is text, a binary one fails the connection (its own test below)
    kind = draw(st.sampled_from(["text", "text", "ping", "fragmented"]))
    if kind == "ping":
        return kind, draw(st.binary(max_size=20)), 1
    size = draw(SIZES)
    text = draw(st.text(min_size=1, max_size=8)) * (size // 4 + 1)
    return kind, text[: max(size, 1)], draw(st.integers(2, 4)) if kind == "fragmented" else 1


def _serialize(
    items: list[tuple[str, Any, int]],
) -> tuple[bytes, list[Any], list[bytes], list[int]]:
    """Server frames for `items`; the messages and the pong payloads they should cause, and where
    each frame ends."""
    out, messages, pongs, ends = bytearray(), [], [], []
    for kind, value, parts in items:
        if kind == "ping":
            out += _unmasked(Opcode.PING, value)
            pongs.append(value)
        else:
            data = value.encode()
            step = max(1, len(data) // parts)
            pieces = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
            for n, piece in enumerate(pieces):
                opcode = Opcode.TEXT if n == 0 else Opcode.CONT
                out += _unmasked(opcode, piece, fin=n == len(pieces) - 1)
                ends.append(len(out))
            messages.append(value)
        ends.append(len(out))
    return bytes(out), messages, pongs, ends


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(peer_items(), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 300_000), max_size=12),
    at_frame_ends=st.lists(st.booleans(), min_size=40, max_size=40),
    listen_first=st.booleans(),
)
async def test_every_message_arrives_whole_and_in_order_however_the_bytes_are_split(
    items: list[tuple[str, Any, int]],
    cuts: list[int],
    at_frame_ends: list[bool],
    listen_first: bool,
) -> None:
    connection, transport, response = _open_client(max_size=2**20)
    stream, expected, pongs, ends = _serialize(items)
    # segments end at random places and at some frame ends (where the fast path starts again)
    cuts = [c % (len(stream) + 1) for c in cuts]
    cuts += [end for end, chosen in zip(ends, at_frame_ends, strict=False) if chosen]
    received: list[Any] = []
    if listen_first:
        connection.listen(received.append)
    # the first frames may share the 101's segment
    for chunk in _chunks(response + stream, [len(response) + c for c in cuts]):
        connection.data_received(chunk)  # a chunk may arrive while a turn is pending
    await _settle(connection)
    if not listen_first:
        connection.listen(received.append)
    await _settle(connection)
    assert connection.protocol.state is State.OPEN
    assert received == expected
    answered = [f for f in _frames_written(transport.written, by_client=True)]
    assert [f.data for f in answered if f.opcode is Opcode.PONG] == pongs


async def test_unfragmented_messages_bypass_websockets_parser_and_a_ping_still_reaches_it() -> None:
    connection, transport, response = _open_client()
    received: list[Any] = []
    connection.listen(received.append)
    connection.data_received(response)
    fed: list[bytes] = []
    original = connection.protocol.receive_data

    def spy(data: bytes) -> None:
        fed.append(data)
        original(data)

    connection.protocol.receive_data = spy  # type: ignore[method-assign]
    for n in range(10):
        connection.data_received(_unmasked(Opcode.TEXT, f'[3,"m{n}",{{}}]'.encode()))
    assert received == [f'[3,"m{n}",{{}}]' for n in range(10)]
    assert fed == []  # the fast path handed every one over
    connection.data_received(_unmasked(Opcode.PING, b"p") + _unmasked(Opcode.TEXT, b"after"))
    # websockets' parser is given the ping frame alone: the frame after it stays on the fast path
    assert fed == [_unmasked(Opcode.PING, b"p")]
    assert received[-1] == "after"
    assert [f.opcode for f in _frames_written(transport.written, by_client=True)] == [Opcode.PONG]
    connection.data_received(_unmasked(Opcode.TEXT, b"fast again"))
    assert len(fed) == 1 and received[-1] == "fast again"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_unmasked(Opcode.TEXT, b"\xff\xfe"), CloseCode.INVALID_DATA),  # not UTF-8
        (_unmasked(Opcode.TEXT, b"x", rsv1=True), CloseCode.PROTOCOL_ERROR),  # no extension
        (_masked(Opcode.TEXT, b"x"), CloseCode.PROTOCOL_ERROR),  # a server never masks
        (_unmasked(Opcode.CONT, b"x"), CloseCode.PROTOCOL_ERROR),  # nothing to continue
        (bytes((0x83, 0x01)) + b"x", CloseCode.PROTOCOL_ERROR),  # reserved opcode
        (_unmasked(Opcode.TEXT, b"x" * 2000), CloseCode.MESSAGE_TOO_BIG),
    ],
)
async def test_a_broken_frame_fails_the_connection_as_websockets_does(
    frame: bytes, code: CloseCode
) -> None:
    connection, transport, response = _open_client(max_size=1000)
    received: list[Any] = []
    connection.listen(received.append)
    connection.data_received(response + _unmasked(Opcode.TEXT, b"before"))
    connection.data_received(frame + _unmasked(Opcode.TEXT, b"after"))
    await asyncio.sleep(0)  # a UTF-8 failure is sent from a task, as websockets' recv() does
    await asyncio.sleep(0)
    assert received == ["before"]
    closes = [
        f for f in _frames_written(transport.written, by_client=True) if f.opcode is Opcode.CLOSE
    ]
    assert closes and Close.parse(closes[0].data).code == code
    assert connection.protocol.state is not State.OPEN


async def test_a_new_message_in_the_middle_of_a_fragmented_one_is_a_protocol_error() -> None:
    connection, transport, response = _open_client()
    received: list[Any] = []
    connection.listen(received.append)
    connection.data_received(response + _unmasked(Opcode.TEXT, b"frag", fin=False))
    connection.data_received(
        _unmasked(Opcode.TEXT, b"whole")
    )  # websockets' parser is at a boundary
    assert received == []
    closes = [
        f for f in _frames_written(transport.written, by_client=True) if f.opcode is Opcode.CLOSE
    ]
    assert Close.parse(closes[0].data).code == CloseCode.PROTOCOL_ERROR


async def test_an_oversized_header_fails_at_once_without_waiting_for_its_payload() -> None:
    connection, transport, response = _open_client(max_size=1000)
    connection.listen(lambda message: None)
    connection.data_received(response + b"\x81\x7f" + (2**40).to_bytes(8, "big") + b"xx")
    closes = [
        f for f in _frames_written(transport.written, by_client=True) if f.opcode is Opcode.CLOSE
    ]
    assert closes and Close.parse(closes[0].data).code == CloseCode.MESSAGE_TOO_BIG


async def test_bytes_after_a_close_frame_go_to_websockets_not_to_the_listener() -> None:
    connection, transport, response = _open_client()
    received: list[Any] = []
    connection.listen(received.append)
    close = _unmasked(Opcode.CLOSE, Close(1000, "bye").serialize())
    connection.data_received(response + close + _unmasked(Opcode.TEXT, b"late"))
    assert received == []
    assert connection.protocol.state is State.CLOSING
    closes = [
        f for f in _frames_written(transport.written, by_client=True) if f.opcode is Opcode.CLOSE
    ]
    assert Close.parse(closes[0].data).code == 1000  # the closing handshake is websockets'


async def test_a_listener_that_raises_fails_the_connection_with_1011_and_hears_nothing_more() -> (
    None
):
    connection, transport, response = _open_client()
    seen: list[Any] = []

    def listener(message: Any) -> None:
        seen.append(message)
        raise RuntimeError("a bug")

    connection.listen(listener)
    connection.data_received(
        response + _unmasked(Opcode.TEXT, b"one") + _unmasked(Opcode.TEXT, b"two")
    )
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert seen == ["one"]
    closes = [
        f for f in _frames_written(transport.written, by_client=True) if f.opcode is Opcode.CLOSE
    ]
    assert Close.parse(closes[0].data).code == CloseCode.INTERNAL_ERROR


async def test_reading_pauses_when_the_backlog_is_full_and_resumes_on_listen() -> None:
    connection, transport, response = _open_client()
    connection.data_received(response)
    for n in range(BACKLOG):
        connection.data_received(_unmasked(Opcode.TEXT, str(n).encode()))
    assert not transport.reading
    received: list[Any] = []
    connection.listen(received.append)
    assert transport.reading
    assert received == [str(n) for n in range(BACKLOG)]
    connection.stop_listening()
    connection.data_received(_unmasked(Opcode.TEXT, b"kept"))
    connection.listen(received.append)
    assert received[-1] == "kept"


# --- turns: one connection's read does not hold up the others (issue 17) ---------------------------


@pytest.mark.parametrize("size", [10, 3000])
async def test_a_read_of_many_frames_is_handed_over_a_budget_per_turn_in_order_between_others(
    size: int,
) -> None:
    """Two connections each handed one read of far more frames than a turn's budget: every callback
    hands over at most the budget, the other connection's turns come in between, every frame arrives
    in order, and each stops reading from its socket until it has worked through what it read."""
    log: list[tuple[str, int]] = []
    peers = []
    count = FRAME_BUDGET * 10 + 7
    for name in ("A", "B"):
        connection, transport, response = _open_client(max_size=2**20)
        connection.data_received(response)

        def listener(message: Any, name: str = name) -> None:
            log.append((name, int(message.split()[0])))

        connection.listen(listener)
        peers.append((name, connection, transport))
    reads = {
        name: b"".join(
            _unmasked(Opcode.TEXT, f"{n} ".encode().ljust(size, b"x")) for n in range(count)
        )
        for name, _, _ in peers
    }
    for name, connection, transport in peers:
        connection.data_received(reads[name])  # one callback
        assert 0 < len([m for m in log if m[0] == name]) <= FRAME_BUDGET
        assert connection.holds_unread and not transport.reading
    delivered = len(log)
    while any(connection.holds_unread for _, connection, _ in peers):
        await asyncio.sleep(0)  # one loop iteration: at most one turn of each connection
        assert len(log) - delivered <= 2 * FRAME_BUDGET
        delivered = len(log)
    for name, _, transport in peers:
        assert [n for peer, n in log if peer == name] == list(range(count))
        assert transport.reading  # resumed once the backlog was done
    # between any two batches of one connection, the other's turn ran
    runs = [len(list(group)) for _, group in itertools.groupby(log, key=lambda m: m[0])]
    per_turn = min(FRAME_BUDGET, BYTE_BUDGET // size + 1)
    assert max(runs) <= per_turn
    assert len(runs) >= 2 * (count // per_turn)


async def test_frames_websockets_parses_are_fed_to_it_a_budget_of_bytes_per_turn() -> None:
    connection, transport, response = _open_client()
    received: list[Any] = []
    connection.listen(received.append)
    connection.data_received(response)
    fed: list[int] = []
    original = connection.protocol.receive_data

    def spy(data: bytes) -> None:
        fed.append(len(data))
        original(data)

    connection.protocol.receive_data = spy  # type: ignore[method-assign]
    pings = 6000  # a ping flood: websockets answers each, so it parses them all
    connection.data_received(
        _unmasked(Opcode.PING, b"p") * pings + _unmasked(Opcode.TEXT, b"after")
    )
    assert connection.holds_unread and not transport.reading
    await _settle(connection)
    assert max(fed) <= PARSER_BUDGET and len(fed) > 1
    assert received == ["after"]
    pongs = [f for f in _frames_written(transport.written, by_client=True)]
    assert len([f for f in pongs if f.opcode is Opcode.PONG]) == pings
    assert transport.reading


async def test_a_connection_dropped_between_turns_hands_over_nothing_more() -> None:
    connection, transport, response = _open_client()
    connection.data_received(response)
    received: list[Any] = []

    def listener(message: Any) -> None:
        received.append(message)
        if len(received) == FRAME_BUDGET + 3:
            connection.drop(1008, "enough")

    connection.listen(listener)
    connection.data_received(
        b"".join(_unmasked(Opcode.TEXT, str(n).encode()) for n in range(FRAME_BUDGET * 4))
    )
    await _settle(connection)
    assert received == [str(n) for n in range(FRAME_BUDGET + 3)]
    assert not transport.reading  # a dropped connection is read no more


async def test_the_end_of_the_stream_comes_after_every_frame_kept_for_later_turns() -> None:
    connection, _, response = _open_client()
    received: list[Any] = []
    connection.listen(received.append)
    connection.data_received(response)
    count = FRAME_BUDGET * 3
    connection.data_received(
        b"".join(_unmasked(Opcode.TEXT, str(n).encode()) for n in range(count))
    )
    assert connection.holds_unread
    connection.eof_received()
    assert received == [str(n) for n in range(count)]
    assert not connection.holds_unread


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
async def test_write_text_from_a_client_is_one_masked_text_frame(size: int) -> None:
    connection, transport, response = _open_client()
    connection.data_received(response)
    text = ("é" * size)[:size]
    connection.write_text(text)
    frames = _frames_written(transport.written, by_client=True)  # the server side insists on masks
    assert [(f.opcode, f.fin, f.data.decode()) for f in frames] == [(Opcode.TEXT, True, text)]


async def test_write_text_on_a_closing_connection_writes_nothing() -> None:
    connection, transport, response = _open_client()
    connection.data_received(response + _unmasked(Opcode.CLOSE, Close(1000, "").serialize()))
    transport.written.clear()
    connection.write_text("too late")
    assert transport.written == b""


# --- over sockets: the server side, a raw client ------------------------------------------------


class RawClient:
    """A charger that speaks RFC 6455 by hand: the upgrade request, then whatever bytes a test sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(HOST, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ocpp/CP HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert accept_key(key).encode() in head
        return cls(reader, writer)

    async def send_split(self, data: bytes, size: int, chunks: int = 250) -> None:
        """`data` in pieces of `size` bytes, most arriving as segments of their own; after `chunks`
        pieces the rest goes in about 50 larger ones (bounded time, big frames still split)."""
        start = sent = 0
        while start < len(data):
            step = size if sent < chunks else max(size, (len(data) - start) // 50 + 1)
            self.writer.write(data[start : start + step])
            await self.writer.drain()
            await asyncio.sleep(0.001)
            start += step
            sent += 1

    async def frames(self, until: Opcode, timeout: float = 5.0) -> list[Frame]:
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while not any(f.opcode is until for f in frames):
                data = await self.reader.read(65536)
                if not data:
                    break
                self.protocol.receive_data(data)
                frames += [e for e in self.protocol.events_received() if isinstance(e, Frame)]
        return frames

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.connections: list[DirectServerConnection] = []
        self.closed = asyncio.Event()

    async def handler(self, connection: DirectServerConnection) -> None:
        self.connections.append(connection)

        def received(message: Any) -> None:
            self.messages.append(message)
            if message == "echo?":
                connection.write_text("echo!")

        connection.listen(received)
        await connection.wait_closed()
        self.closed.set()


async def _server(recorder: Recorder, max_size: int = 2**20, **options: Any) -> Any:
    return await serve(recorder.handler, HOST, 0, max_size=max_size, **options)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, 1 << 20])
async def test_masked_frames_from_a_raw_client_arrive_however_the_segments_fall(chunk: int) -> None:
    recorder = Recorder()
    async with await _server(recorder) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await RawClient.open(port)
        texts = ["a", "é" * 70, "x" * 126, "y" * 70_000, "echo?"]
        data = b"".join(_masked(Opcode.TEXT, t.encode()) for t in texts)
        data += _masked(Opcode.PING, b"hb")
        data += _masked(Opcode.TEXT, b"fr", fin=False) + _masked(Opcode.CONT, b"ag")
        await client.send_split(data, chunk)
        frames = await client.frames(until=Opcode.PONG)
        frames += (
            []
            if any(f.opcode is Opcode.TEXT for f in frames)
            else await client.frames(until=Opcode.TEXT)
        )
        async with asyncio.timeout(5):
            while len(recorder.messages) < 6:
                await asyncio.sleep(0.01)
        assert recorder.messages == [*texts, "frag"]
        assert [f.data for f in frames if f.opcode is Opcode.PONG] == [b"hb"]
        assert [f.data for f in frames if f.opcode is Opcode.TEXT] == [b"echo!"]  # unmasked
        await client.close()


async def test_frames_sent_before_the_handshake_answer_reach_the_listener_through_websockets() -> (
    None
):
    """A client that does not wait for the 101 (RFC 6455 §4.1 says it must): its frames came with the
    request, so websockets' parser reads them, and everything after them (the fast path stays off
    for that connection, which still works)."""
    recorder = Recorder()
    async with await _server(recorder) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ocpp/CP HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            + _masked(Opcode.TEXT, b"early")
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        client = RawClient(reader, writer)
        await client.send_split(_masked(Opcode.TEXT, b"later") + _masked(Opcode.TEXT, b"echo?"), 3)
        assert [f.data for f in await client.frames(until=Opcode.TEXT)] == [b"echo!"]
        assert recorder.messages == ["early", "later", "echo?"]
        await client.close()


async def test_websockets_reads_the_handshake_answer_alone_and_the_frames_after_it_go_fast() -> (
    None
):
    connection, _, response = _open_client()
    received: list[Any] = []
    connection.listen(received.append)
    fed: list[bytes] = []
    original = connection.protocol.receive_data

    def spy(data: bytes) -> None:
        fed.append(data)
        original(data)

    connection.protocol.receive_data = spy  # type: ignore[method-assign]
    first = _unmasked(Opcode.TEXT, b"first")
    # the answer arrives in two segments, the second with the first frame
    connection.data_received(response[:-2])
    connection.data_received(response[-2:] + first + _unmasked(Opcode.TEXT, b"second"))
    assert fed == [response[:-2], response[-2:]]
    assert received == ["first", "second"]
    assert connection.protocol.state is State.OPEN


@pytest.mark.parametrize("fragmented", [False, True])
async def test_a_binary_message_fails_the_connection_with_1003(fragmented: bool) -> None:
    """Issue 17: OCPP-J is text. A binary message (on the fast path, or fragmented through
    websockets' parser) is never handed over, nor anything after it; the peer gets 1003."""
    recorder = Recorder()
    async with await _server(recorder) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await RawClient.open(port)
        binary = b'[2, "b1", "Heartbeat", {}]'
        if fragmented:
            data = _masked(Opcode.BINARY, binary[:5], fin=False) + _masked(Opcode.CONT, binary[5:])
        else:
            data = _masked(Opcode.BINARY, binary)
        await client.send_split(
            _masked(Opcode.TEXT, b"before") + data + _masked(Opcode.TEXT, b"after"), 1000
        )
        frames = await client.frames(until=Opcode.CLOSE)
        assert Close.parse(frames[-1].data).code == CloseCode.UNSUPPORTED_DATA
        assert recorder.messages == ["before"]
        await client.close()


async def test_an_unmasked_frame_from_a_client_is_a_protocol_error() -> None:
    recorder = Recorder()
    async with await _server(recorder) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await RawClient.open(port)
        await client.send_split(_masked(Opcode.TEXT, b"ok") + _unmasked(Opcode.TEXT, b"bad"), 1000)
        frames = await client.frames(until=Opcode.CLOSE)
        assert Close.parse(frames[-1].data).code == CloseCode.PROTOCOL_ERROR
        assert recorder.messages == ["ok"]
        await client.close()


async def test_a_websockets_client_and_a_direct_server_talk_both_ways_with_compression() -> None:
    """With permessage-deflate, frames carry rsv1: everything goes through websockets itself."""
    recorder = Recorder()
    async with await _server(recorder, compression="deflate") as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with websockets_connect(
            f"ws://{HOST}:{port}/ocpp/CP", compression="deflate"
        ) as client:
            await client.send("x" * 5000)
            await client.send("echo?")
            assert await asyncio.wait_for(client.recv(), 5) == "echo!"
        assert recorder.messages == ["x" * 5000, "echo?"]


async def test_a_direct_client_and_a_websockets_server_talk_both_ways() -> None:
    got: list[Any] = []

    async def handler(connection: ServerConnection) -> None:
        async for message in connection:  # websockets' server insists on masked frames
            got.append(message)
            await connection.send(f"re:{message}")

    async with websockets_serve(handler, HOST, 0, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        connection = await connect(f"ws://{HOST}:{port}/ocpp/CP")
        answers: list[Any] = []
        connection.listen(answers.append)
        sizes = [0, 125, 126, 65535, 65536, 100_000]
        for size in sizes:
            connection.write_text("z" * size)
        async with asyncio.timeout(5):
            while len(answers) < len(sizes):
                await asyncio.sleep(0.01)
        await connection.close()
        assert got == ["z" * size for size in sizes]
        assert answers == [f"re:{'z' * size}" for size in sizes]


async def test_a_closed_server_connection_is_freed_without_the_cyclic_collector() -> None:
    """The bridge freezes what lives long (adapters.ops.gc_policy), so a closed connection that needed
    the cyclic collector would linger with its TLS buffers until the next full collection."""
    gone: list[weakref.ref[Any]] = []

    async def handler(connection: DirectServerConnection) -> None:
        gone.append(weakref.ref(connection))
        gone.append(weakref.ref(connection.protocol))
        connection.listen(lambda message: None)
        await connection.wait_closed()
        connection.stop_listening()

    server = await serve(
        handler,
        HOST,
        0,
        select_subprotocol=lambda connection, offered: offered[0] if offered else None,
    )
    async with server:
        port = next(iter(server.sockets)).getsockname()[1]
        gc.collect()
        gc.disable()
        try:
            async with websockets_connect(
                f"ws://{HOST}:{port}/ocpp/CP",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            ) as client:
                await client.send("hello")
                assert client.subprotocol == "ocpp2.0.1"
            async with asyncio.timeout(5):
                while len(gone) < 2 or any(ref() is not None for ref in gone):
                    await asyncio.sleep(0.05)
        finally:
            gc.enable()


async def test_a_peer_that_sends_its_close_and_goes_silent_is_cut_off_after_the_close_timeout() -> (
    None
):
    recorder = Recorder()
    async with await _server(recorder, close_timeout=0.3) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await RawClient.open(port)
        client.writer.write(_masked(Opcode.CLOSE, Close(1000, "bye").serialize()))
        await client.writer.drain()  # and then neither reads nor closes
        async with asyncio.timeout(3):  # without the deadline: until the peer gives up
            await recorder.closed.wait()
        assert recorder.connections[0].protocol.state is State.CLOSED
        await client.close()


@pytest.mark.parametrize("ending", ["bare TCP", "refused 404", "vanished after 101"])
async def test_a_connection_that_ends_without_a_closing_handshake_leaves_no_cyclic_garbage(
    ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17's connection storm: websockets' protocol keeps its parser generator suspended and
    the exception that ended it (its traceback holds the parser's frame, which holds the protocol):
    under the bridge's GC policy such cycles piled up until the next full collection (RSS +39 MB
    per 200,000 connections). Every connection and its protocol are freed by reference counting
    alone."""
    made: list[weakref.ref[Any]] = []
    connection_made = DirectServerConnection.connection_made

    def tracked(self: DirectServerConnection, transport: Any) -> None:
        made.append(weakref.ref(self))
        made.append(weakref.ref(self.protocol))
        connection_made(self, transport)

    monkeypatch.setattr(DirectServerConnection, "connection_made", tracked)

    def refuse(connection: DirectServerConnection, request: Any) -> Any:
        return connection.respond(404, "unknown\n") if ending == "refused 404" else None

    async def handler(connection: DirectServerConnection) -> None:
        connection.listen(lambda message: None)
        await connection.wait_closed()

    server = await serve(handler, HOST, 0, process_request=refuse)
    async with server:
        port = next(iter(server.sockets)).getsockname()[1]
        gc.collect()
        gc.disable()
        try:
            for _ in range(5):
                if ending == "vanished after 101":
                    client = await RawClient.open(port)
                    await client.close()  # no close frame
                    continue
                reader, writer = await asyncio.open_connection(HOST, port)
                if ending == "refused 404":
                    writer.write(
                        f"GET /ocpp/X HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
                    )
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                    assert head.startswith(b"HTTP/1.1 404"), head
                writer.close()
            async with asyncio.timeout(5):
                while len(made) < 10 or any(ref() is not None for ref in made):
                    await asyncio.sleep(0.05)
        finally:
            gc.enable()
