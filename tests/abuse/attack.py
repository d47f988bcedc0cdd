"""The abuse suite's attacker: one attack against a running bridge, as its own process (so the test
process, where the control charger and the CSMS live, keeps its own event loop free), printing one JSON
line with what it saw. `python -m tests.abuse.attack KIND --port P [--count N] ...`

Attacks (raw sockets; client frames masked with a zero key, which RFC 6455 allows)
- flood: `count` CALLs whose values may not pass (1e308, -0.0, 1.0, 2^64+1 in integer fields, NUL in an
  identifier), at most `--rate` a second, reading every answer: {"sent", "answers", "codes"}.
- ping: `count` pings, reading every pong: {"sent", "pongs"}.
- nonreader: CALLs the bridge answers itself (unknown action, a long name), at most `--rate` a second,
  from a socket with a small receive buffer that is never read: {"sent", "closed", "connections",
  "closes"} (closed: the bridge dropped the last connection). With --reconnect a dropped connection
  is followed by a new one until `count` frames were sent (the bridge closes one after ~28,000).
- slowreader: the same, reading 4 KiB every 50 ms: {"sent", "read", "closed", ...}.
- storm: `count` connections, 50 at a time: an unknown station (404), a bare TCP connect and close, a
  handshake to the attack station then close: {"statuses"}.
- oversized: `count` connections, 50 at a time (each of the 50 on its own station, ATTACK-00 to
  ATTACK-49, one after the other), each sending one frame over the size limit (every other one with
  its payload, the others with a 2^62 length alone): {"close_codes"}.
- idle: `count` TCP connections to the health port that send nothing, held `--hold` seconds: {"opened"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter
from typing import Any

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
# oversized: connections at once, each to its own station (rig.ATTACK_POOL: ATTACK-00 ... ATTACK-49)
PARALLEL = 50
BAD_VALUES = ["1e308", "-0.0", "1.0", "18446744073709551617", "2147483648"]


def frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", length)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", length)
    return head + b"\0\0\0\0" + payload


def text(message: str) -> bytes:
    return frame(0x1, message.encode())


async def handshake(
    port: int, station: str, *, rcvbuf: int | None = None, limit: int = 1 << 16
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
    writer.write(
        f"GET /ocpp/{station} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split()[1]), reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


async def flood(args: argparse.Namespace) -> dict[str, Any]:
    status, reader, writer = await handshake(args.port, args.station)
    assert status == 101, status
    codes: Counter[str] = Counter()
    answers = 0

    async def read() -> None:
        nonlocal answers
        while answers < args.count:
            opcode, payload = await read_frame(reader)
            if opcode == 0x1:
                answers += 1
                message = json.loads(payload)
                codes[message[2] if message[0] == 4 else "CALLRESULT"] += 1
            elif opcode == 0x9:
                writer.write(frame(0xA, payload))
            elif opcode == 0x8:
                break

    reading = asyncio.create_task(read())
    batch = bytearray()
    started = time.monotonic()
    for n in range(args.count):
        value = BAD_VALUES[n % len(BAD_VALUES)]
        if n % 6 == 5:
            call = (
                f'[2,"f{n}","Authorize",{{"idToken":{{"idToken":"A\\u0000{n}","type":"Central"}}}}]'
            )
        else:
            call = (
                f'[2,"f{n}","StatusNotification",{{"timestamp":"2026-11-22T10:00:00Z",'
                f'"connectorStatus":"Available","evseId":{value},"connectorId":1}}]'
            )
        batch += text(call)
        if len(batch) > 1 << 14:
            writer.write(bytes(batch))
            batch.clear()
            await writer.drain()
            if args.rate:  # at most `rate` frames a second
                await asyncio.sleep(max(0.0, started + n / args.rate - time.monotonic()))
    writer.write(bytes(batch))
    await writer.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reading, args.wait)
    writer.close()
    return {"sent": args.count, "answers": answers, "codes": dict(codes)}


async def ping(args: argparse.Namespace) -> dict[str, Any]:
    status, reader, writer = await handshake(args.port, args.station)
    assert status == 101, status
    pongs = 0

    async def read() -> None:
        nonlocal pongs
        while pongs < args.count:
            opcode, payload = await read_frame(reader)
            if opcode == 0xA:
                pongs += 1
            elif opcode == 0x9:
                writer.write(frame(0xA, payload))
            elif opcode == 0x8:
                break

    reading = asyncio.create_task(read())
    one = frame(0x9, b"p")
    for start in range(0, args.count, 4096):
        writer.write(one * min(4096, args.count - start))
        await writer.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reading, args.wait)
    writer.close()
    return {"sent": args.count, "pongs": pongs}


async def nonreader(args: argparse.Namespace, slow: bool = False) -> dict[str, Any]:
    """With --reconnect, a connection the bridge closed is followed by a new one until `count` frames
    were sent (or `wait` ran out): one charger that keeps coming back."""
    deadline = time.monotonic() + args.wait
    started = time.monotonic()
    totals = {"sent": 0, "read": 0, "connections": 0, "closes": 0}
    closed = False
    while True:
        totals["connections"] += 1
        sent, read, closed = await _nonreader_once(args, slow, deadline, started, totals["sent"])
        totals["sent"] += sent
        totals["read"] += read
        totals["closes"] += int(closed)
        if not (args.reconnect and closed) or totals["sent"] >= args.count:
            break
        if time.monotonic() >= deadline:
            break
    return {**totals, "closed": closed}


async def _nonreader_once(
    args: argparse.Namespace, slow: bool, deadline: float, started: float, before: int
) -> tuple[int, int, bool]:
    # a small receive buffer and a small reader limit: what the bridge writes waits on its side
    status, reader, writer = await handshake(args.port, args.station, rcvbuf=4096, limit=4096)
    assert status == 101, status
    call = text('[2,"n","' + "MakeCoffee" * 20 + '",{}]')
    sent = read = 0
    closed = False

    async def slow_read() -> None:
        nonlocal read
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                return
            read += len(chunk)
            await asyncio.sleep(0.05)

    reading = asyncio.create_task(slow_read()) if slow else None
    try:
        while before + sent < args.count and time.monotonic() < deadline:
            writer.write(call * 256)
            sent += 256
            await asyncio.wait_for(writer.drain(), max(0.1, deadline - time.monotonic()))
            if args.rate:  # at most `rate` frames a second
                await asyncio.sleep(
                    max(0.0, started + (before + sent) / args.rate - time.monotonic())
                )
    except (ConnectionError, TimeoutError):
        pass
    # closed by the bridge: the socket reports it once what it holds is consumed
    if not closed:
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                while not writer.transport.is_closing():
                    writer.write(call)
                    await writer.drain()
                    await asyncio.sleep(0.05)
        closed = writer.transport.is_closing() or reader.at_eof()
    if reading is not None:
        reading.cancel()
    writer.close()
    return sent, read, closed


async def storm(args: argparse.Namespace) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    gate = asyncio.Semaphore(50)

    async def one(n: int) -> None:
        async with gate:
            try:
                kind = n % 3
                if kind == 1:
                    _, writer = await asyncio.open_connection("127.0.0.1", args.port)
                    writer.close()
                    statuses["tcp"] += 1
                    return
                station = f"NOBODY-{n}" if kind == 0 else args.station
                status, _, writer = await asyncio.wait_for(handshake(args.port, station), 10)
                statuses[str(status)] += 1
                writer.close()
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                statuses[type(exc).__name__] += 1

    # in rounds, so a million connections are not a million tasks at once
    for start in range(0, args.count, 10_000):
        await asyncio.gather(*(one(n) for n in range(start, min(args.count, start + 10_000))))
    return {"statuses": dict(statuses)}


async def oversized(args: argparse.Namespace) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    workers = min(PARALLEL, args.count)

    async def one(n: int, station: str) -> None:
        status, reader, writer = await handshake(args.port, station)
        assert status == 101, status
        payload = b"x" * (args.size + 1) if n % 2 else b""
        length = args.size + 1 if n % 2 else 1 << 62
        head = bytes((0x81, 0x80 | 127)) + struct.pack("!Q", length)
        try:
            writer.write(head + b"\0\0\0\0" + payload)
            async with asyncio.timeout(10):
                while True:
                    opcode, body = await read_frame(reader)
                    if opcode == 0x8:
                        codes[str(close_code(body))] += 1
                        break
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            codes[type(exc).__name__] += 1
        writer.close()

    async def worker(w: int) -> None:
        # one station per worker, one connection at a time on it: a second connection of a
        # station would replace the first (closed 1000), which is not what is measured
        station = f"{args.station}-{w:02d}" if workers > 1 else args.station
        for n in range(w, args.count, workers):
            await one(n, station)

    await asyncio.gather(*(worker(w) for w in range(workers)))
    return {"close_codes": dict(codes)}


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    writers = []
    for _ in range(args.count):
        _, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writers.append(writer)
    print(json.dumps({"opened": len(writers)}), flush=True)  # the test probes now
    await asyncio.sleep(args.hold)
    for writer in writers:
        writer.close()
    return {"opened": len(writers)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--station", default="ATTACK")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="nonreader, slowreader: connect again after the bridge closed, until --count are sent",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="flood, nonreader, slowreader: frames a second (0: no limit)",
    )
    args = parser.parse_args()
    attacks = {
        "flood": flood,
        "ping": ping,
        "nonreader": nonreader,
        "slowreader": lambda a: nonreader(a, slow=True),
        "storm": storm,
        "oversized": oversized,
        "idle": idle,
    }
    print(json.dumps(await attacks[args.kind](args)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
