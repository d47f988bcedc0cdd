"""Issue 17 figures: a charger that floods and never reads, and the logs of an invalid-frame flood.

Run: `.venv/bin/python -m bench.non_reading_peer [--frames 1000000] [--log-frames 100000]`.
Not part of `make test`; the figures go into the closing report of issue 17.

Rules
- The bridge runs as `ocpp-bridge run` runs it, its own process (its logs to a file, which is what the
  log figure counts); the CSMS (answers every CALL at once), a control charger and the /health prober
  run on this process's event loop; each flooder is a thread writing pre-built masked frames to a
  blocking socket with a 4 KiB receive buffer.
- `memory`: a charger (pass-through 2.0.1) floods `--frames` CALLs of an unknown action, each earning a
  CALLERROR, and never reads; then it closes its socket. Reported: the bridge's RSS before and at its
  highest, how many frames the flooder got out before its connection ended, and the longest a
  /health request waited (probed every 20 ms, one connection per request), of those answered while
  the flooder wrote and of those answered after it closed (until /health answers within 0.1 s again,
  at least 3 s). The control charger's heartbeat round trips over the whole run: count
  and longest.
- `logs`: a charger floods `--log-frames` invalid CALLs (an unknown action of 3,000 characters, a
  BootNotification whose model is 3,000 characters) and reads every answer; reported: bytes and the
  longest line of the bridge's log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _masked(text: str) -> bytes:
    payload = text.encode()
    mask = secrets.token_bytes(4)
    length = len(payload)
    if length < 126:
        head = bytes((0x81, 0x80 | length))
    elif length < 65536:
        head = b"\x81\xfe" + struct.pack("!H", length)
    else:
        head = b"\x81\xff" + struct.pack("!Q", length)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def _handshake(port: int, station: str, rcvbuf: int | None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    sock.sendall(
        (
            f"GET /ocpp/{station} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("the bridge closed the handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    return sock


class Flooder(threading.Thread):
    """Writes `frames` CALLs (cycled from `templates`) in batches of 256; reads nothing unless `read`."""

    def __init__(self, port: int, station: str, frames: int, templates: list[str], read: bool):
        super().__init__(daemon=True)
        self.sock = _handshake(port, station, None if read else 4096)
        self.frames = frames
        self.batches = [
            b"".join(_masked(t.replace("{i}", f"{n}-{i}")) for i in range(256))
            for n, t in enumerate(templates)
        ]
        self.read = read
        self.sent = 0
        self.ended: str | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        if self.read:
            threading.Thread(target=self._drain, daemon=True).start()
        try:
            index = 0
            while self.sent < self.frames:
                self.sock.sendall(self.batches[index % len(self.batches)])
                index += 1
                self.sent += 256
        except OSError as exc:
            self.ended = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished.set()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while self.sock.recv(1 << 16):
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


async def _csms(connection: ServerConnection) -> None:
    async for message in connection:
        frame = json.loads(message)
        if frame[0] == 2:
            payload: dict[str, Any] = {}
            if frame[2] == "Heartbeat":
                payload = {"currentTime": "2026-12-07T10:00:00Z"}
            await connection.send(json.dumps([3, frame[1], payload]))


class Prober:
    """GET /health every 20 ms, one connection per request; records (started, seconds waited)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, float]] = []
        self.stop = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop:
            started = loop.time()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(300):
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    await reader.read()
                    writer.close()
            self.samples.append((started, loop.time() - started))
            await asyncio.sleep(0.02)

    def worst(self, since: float, until: float) -> float:
        """The longest wait of a request answered between `since` and `until`."""
        waits = [waited for at, waited in self.samples if since <= at + waited <= until]
        return round(max(waits, default=0.0), 3)


async def _control(port: int, rtts: list[float], stop: asyncio.Event) -> str | None:
    """Heartbeats until `stop`; None, or how the control charger's connection ended."""
    try:
        await _heartbeats(port, rtts, stop)
    except ConnectionClosed as exc:
        return str(exc)
    return None


async def _heartbeats(port: int, rtts: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    async with connect(
        f"ws://127.0.0.1:{port}/ocpp/CONTROL",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
    ) as charger:
        n = 0
        while not stop.is_set():
            n += 1
            started = loop.time()
            await charger.send(json.dumps([2, f"hb{n}", "Heartbeat", {}]))
            async with asyncio.timeout(600):
                answer = json.loads(await charger.recv())
            assert answer[:2] == [3, f"hb{n}"], answer
            rtts.append(loop.time() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


def _write_config(folder: Path, csms_port: int, south: int, health: int, extra: str) -> Path:
    path = folder / "bridge.toml"
    path.write_text(
        f"""[bridge]
store = "{folder / "bridge.db"}"
health = "127.0.0.1:{health}"
{extra}
[csms]
url = "ws://127.0.0.1:{csms_port}/ocpp"

[south]
listen = "127.0.0.1:{south}"

[[stations]]
id = "FLOOD"
protocol = "ocpp2.0.1"

[[stations]]
id = "CONTROL"
protocol = "ocpp2.0.1"
"""
    )
    return path


async def _bridge(folder: Path, extra: str = "") -> tuple[subprocess.Popen[bytes], int, int, Any]:
    csms = await serve(_csms, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    csms_port = next(iter(csms.sockets)).getsockname()[1]
    south, health = _free_port(), _free_port()
    config = _write_config(folder, csms_port, south, health, extra)
    log = (folder / "bridge.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is measured
        [str(Path(sys.executable).with_name("ocpp-bridge")), "run", "-c", str(config)],
        stderr=log,
        stdout=log,
    )
    for _ in range(200):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", health), 0.2).close()
            break
        await asyncio.sleep(0.05)
    return process, south, health, csms


async def memory(frames: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as tmp:
        process, south, health, csms = await _bridge(Path(tmp))
        try:
            prober = Prober(health)
            probe_task = asyncio.create_task(prober.run())
            rtts: list[float] = []
            stop = asyncio.Event()
            control = asyncio.create_task(_control(south, rtts, stop))
            await asyncio.sleep(1)
            rss_before = _rss(process.pid)
            flooder = Flooder(south, "FLOOD", frames, ['[2,"{i}","MakeCoffee",{}]'], read=False)
            started = loop.time()
            flooder.start()
            rss_peak = rss_before
            while not flooder.finished.is_set():
                rss_peak = max(rss_peak, _rss(process.pid))
                await asyncio.sleep(0.1)
            flood_end = loop.time()
            flooder.close()
            # until /health answers within 0.1 s again, at least 3 s
            while True:
                rss_peak = max(rss_peak, _rss(process.pid))
                await asyncio.sleep(0.1)
                recent = [w for at, w in prober.samples if at > loop.time() - 1]
                if loop.time() > flood_end + 3 and recent and max(recent) < 0.1:
                    break
            rss_after = _rss(process.pid)
            stop.set()
            control_lost = await control
            prober.stop = True
            await probe_task
            return {
                "frames_offered": frames,
                "frames_written_before_the_end": flooder.sent,
                "flooder_ended_by": flooder.ended or "it closed after the last frame",
                "flood_seconds": round(flood_end - started, 1),
                "rss_before_mib": round(rss_before / 2**20, 1),
                "rss_peak_mib": round(rss_peak / 2**20, 1),
                "rss_after_close_mib": round(rss_after / 2**20, 1),
                "health_worst_wait_during_flood_s": prober.worst(started, flood_end),
                "health_worst_wait_after_close_s": prober.worst(flood_end, loop.time()),
                "control_heartbeats": len(rtts),
                "control_worst_rtt_s": round(max(rtts, default=0.0), 3),
                "control_connection_lost": control_lost,
            }
        finally:
            process.terminate()
            process.wait(30)
            csms.close()


async def logs(frames: int) -> dict[str, Any]:
    long = "A" * 3000
    templates = [
        '[2,"{i}","' + long + '",{}]',
        '[2,"{i}","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"'
        + long
        + '","vendorName":"V"}}]',
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        process, south, _, csms = await _bridge(folder)
        try:
            flooder = Flooder(south, "FLOOD", frames, templates, read=True)
            flooder.start()
            await asyncio.to_thread(flooder.finished.wait)
            await asyncio.sleep(2)
            flooder.close()
        finally:
            process.terminate()
            process.wait(30)
            csms.close()
        log = (folder / "bridge.log").read_bytes()
        lines = log.splitlines()
        return {
            "frames": frames,
            "log_bytes": len(log),
            "log_lines": len(lines),
            "longest_line_bytes": max((len(line) for line in lines), default=0),
            "flooder_ended_by": flooder.ended or "it sent every frame",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--log-frames", type=int, default=100_000)
    parser.add_argument("--only", choices=("memory", "logs"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.only in (None, "memory"):
        results["memory"] = asyncio.run(memory(args.frames))
        print(json.dumps(results["memory"]), flush=True)
    if args.only in (None, "logs"):
        results["logs"] = asyncio.run(logs(args.log_frames))
        print(json.dumps(results["logs"]), flush=True)


if __name__ == "__main__":
    main()
