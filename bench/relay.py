"""The floor: a plain websocket relay that copies text frames between a charger and the CSMS, no parsing.

Run as a child of the benchmark: `python -m bench.relay --upstream ws://127.0.0.1:PORT/ocpp`.

Rules
- Same websockets library, same loop policy and the same per-connection settings as the bridge under the
  benchmark's configuration (compression, ping interval and timeout, frame size limit, close timeout),
  so the only difference measured is what the bridge does with a frame.
- A charger connecting to `/<path>` is relayed to `<upstream>/<last path segment>` with the subprotocol
  the charger offered first; a frame read on one side is sent as is on the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.common import (
    HOST,
    Control,
    LagSampler,
    install_stop_signals,
    raise_nofile_limit,
    self_rss_bytes,
    use_uvloop,
)

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
PING = 20.0
CLOSE_TIMEOUT = 3


async def _pump(source: Any, sink: Any) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in source:
            await sink.send(message)


class Relay:
    def __init__(self, upstream: str, compression: bool) -> None:
        self.upstream = upstream.rstrip("/")
        self.compression = "deflate" if compression else None
        self.pairs = 0

    def select(self, connection: ServerConnection, offered: Any) -> Any:
        for protocol in offered:
            if protocol in SUBPROTOCOLS:
                return protocol
        return None

    async def handler(self, south: ServerConnection) -> None:
        assert south.request is not None
        station_id = south.request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        north: ClientConnection
        try:
            north = await connect(
                f"{self.upstream}/{station_id}",
                subprotocols=[south.subprotocol or "ocpp2.0.1"],  # type: ignore[list-item]
                compression=self.compression,
                ping_interval=PING,
                ping_timeout=PING,
                close_timeout=CLOSE_TIMEOUT,
                max_size=1 << 20,
                open_timeout=30,
            )
        except (OSError, TimeoutError, Exception):
            await south.close(1013, "upstream unavailable")
            return
        self.pairs += 1
        try:
            async with asyncio.TaskGroup() as group:
                up = group.create_task(_pump(south, north))
                down = group.create_task(_pump(north, south))
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                await north.close()
                await south.close()
        finally:
            self.pairs -= 1


async def main(args: argparse.Namespace) -> None:
    control = Control()
    raise_nofile_limit()
    relay = Relay(args.upstream, args.compression)
    server = await serve(
        relay.handler,
        HOST,
        args.port,
        select_subprotocol=relay.select,
        compression="deflate" if args.compression else None,
        ping_interval=PING,
        ping_timeout=PING,
        max_size=1 << 20,
        close_timeout=CLOSE_TIMEOUT,
    )
    port = next(iter(server.sockets)).getsockname()[1]
    lag = LagSampler()
    lag.start()
    install_stop_signals(control.stop)

    async def stats(command: dict[str, Any]) -> dict[str, Any]:
        if command.get("gc"):
            gc.collect()
        return {"pairs": relay.pairs, "rss": self_rss_bytes(), "lag": lag.take()}

    control.send({"ready": True, "port": port})
    try:
        await control.serve({"stats": stats})
    finally:
        await lag.close()
        server.close()
        await server.wait_closed()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--compression", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    use_uvloop(args.uvloop)
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
