"""The CSMS sink: a minimal OCPP 2.0.1 websocket server that answers every CALL at once, cheaply.

Run as a child of the benchmark: `python -m bench.sink [--tls-cert F --tls-key F] [--compression]`.

Rules
- Accepts any path; the station id is the path's last segment. Selects subprotocol `ocpp2.0.1`.
- Every CALL gets the CALLRESULT of `bench.messages.sink_answers` for its action at once (one orjson parse,
  one string concatenation); CALLRESULTs and CALLERRORs are counted and dropped. It never pings.
- It counts, per station group (the station id up to its first '-'), CALLs per action and sampled values
  (MeterValues and TransactionEvent meter values), with the monotonic time of the first and last CALL,
  so the 104 benchmark can tell how many point updates arrived and when.
- `mark` starts a window: every station id that connects after it is recorded once with its monotonic time
  (CLOCK_MONOTONIC is system-wide on Linux, so times compare across the benchmark's processes).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import ssl
import time
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.common import HOST, Control, install_stop_signals, raise_nofile_limit, use_uvloop
from bench.messages import sink_answers


class Sink:
    def __init__(self) -> None:
        self.answers = {action: "," + text + "]" for action, text in sink_answers().items()}
        self.open: dict[str, int] = {}
        self.connections = 0
        self.calls: dict[str, int] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.since_mark: dict[str, float] | None = None
        self.bad_frames = 0

    async def handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        self.connections += 1
        self.open[station_id] = self.open.get(station_id, 0) + 1
        if self.since_mark is not None and station_id not in self.since_mark:
            self.since_mark[station_id] = time.monotonic()
        group = self.groups.get(station_id.split("-", 1)[0])
        if group is None:
            group = self.groups[station_id.split("-", 1)[0]] = {
                "calls": 0,
                "actions": {},
                "sampled_values": 0,
                "first": None,
                "last": None,
            }
        answers = self.answers
        calls = self.calls
        try:
            async for message in connection:
                try:
                    frame = orjson.loads(message)
                    if frame[0] != 2:
                        continue
                    message_id, action, payload = frame[1], frame[2], frame[3]
                except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
                    self.bad_frames += 1
                    continue
                calls[action] = calls.get(action, 0) + 1
                now = time.monotonic()
                group["calls"] += 1
                group["actions"][action] = group["actions"].get(action, 0) + 1
                if group["first"] is None:
                    group["first"] = now
                group["last"] = now
                if action in ("MeterValues", "TransactionEvent"):
                    for value in payload.get("meterValue", ()):
                        group["sampled_values"] += len(value.get("sampledValue", ()))
                answer = answers.get(action, ",{}]")
                await connection.send('[3,"' + str(message_id) + '"' + answer)
        except ConnectionClosed:
            pass
        finally:
            left = self.open[station_id] - 1
            if left:
                self.open[station_id] = left
            else:
                del self.open[station_id]

    async def stats(self, _: dict[str, Any]) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "open": sum(self.open.values()),
            "distinct_open": len(self.open),
            "connections": self.connections,
            "calls": dict(self.calls),
            "groups": self.groups,
            "bad_frames": self.bad_frames,
            "cpu": usage.ru_utime + usage.ru_stime,
        }

    async def mark(self, _: dict[str, Any]) -> dict[str, Any]:
        self.since_mark = {}
        return {"marked": time.monotonic()}

    async def marked(self, command: dict[str, Any]) -> dict[str, Any]:
        """Connection times since `mark` of the stations whose ids start with one of `prefixes`, and
        how many of them are open now."""
        prefixes = tuple(command.get("prefixes", [""]))
        seen = self.since_mark or {}
        times = sorted(t for s, t in seen.items() if s.startswith(prefixes))
        open_now = sum(1 for s in self.open if s.startswith(prefixes))
        return {"times": times, "open": open_now}

    async def reset(self, _: dict[str, Any]) -> dict[str, Any]:
        self.calls = {}
        self.groups = {}
        return {"reset": True}


async def main(args: argparse.Namespace) -> None:
    control = Control()
    raise_nofile_limit()
    sink = Sink()
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    server = await serve(
        sink.handler,
        HOST,
        args.port,
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        compression="deflate" if args.compression else None,
        ping_interval=None,
        max_size=1 << 20,
        ssl=context,
        backlog=4096,
    )
    port = next(iter(server.sockets)).getsockname()[1]
    install_stop_signals(control.stop)
    control.send({"ready": True, "port": port})
    try:
        await control.serve(
            {"stats": sink.stats, "mark": sink.mark, "marked": sink.marked, "reset": sink.reset}
        )
    finally:
        server.close()
        await server.wait_closed()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--compression", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    use_uvloop(args.uvloop)
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
