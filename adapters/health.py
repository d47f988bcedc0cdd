"""The health and metrics endpoint on `[bridge] health`: a tiny HTTP/1.1 server on asyncio streams.

Rules
- `GET /health`: 200 while the process serves requests at all (liveness).
- `GET /ready`: 200 when every readiness check passes, else 503; the body is JSON either way,
  `{"ready": false, "checks": {"south": "listener not up", "store": "ok", ...}}`, plus `"stations":
  {"GB104-1": "104 link not up after 3 attempts: ..."}` naming stations that cannot be reached. Those
  do not make the bridge unready: a charger that is off is no reason for an orchestrator to restart
  the bridge serving the others.
- `GET /metrics`: the Prometheus text format of the runtime's private registry.
- `HEAD` answers like `GET` without a body; any other method gets 405, any other path 404, a request that
  cannot be read 400. Every answer has a Content-Length and `Connection: close`; one request per
  connection.
- A client gets `REQUEST_TIMEOUT` seconds to send its request head, and at most `MAX_CLIENTS` are served at
  once (more are closed at once): a slow or hostile scraper cannot pin the bridge's memory or tasks.
- Everything runs on the event loop's thread, so the readiness and metrics callbacks may read runtime
  state without locks. `close()` stops listening and ends every connection still open.
- Bind it to loopback (the default) unless something outside the host or container must scrape it; it has
  no authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import orjson

from adapters.config import split_host_port
from adapters.logs import get_logger
from adapters.metrics import CONTENT_TYPE, BridgeMetrics

# name -> None when the check passes, else the reason it does not
Readiness = Callable[[], dict[str, str | None]]
# station id -> why it cannot be served now (informational)
StationProblems = Callable[[], dict[str, str]]

REQUEST_TIMEOUT = 5.0
MAX_CLIENTS = 32
_MAX_HEADER_LINES = 100
_LINE_LIMIT = 8192

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class HealthServer:
    def __init__(
        self,
        address: str,
        metrics: BridgeMetrics,
        readiness: Readiness,
        station_problems: StationProblems | None = None,
    ) -> None:
        self._host, self._port = split_host_port(address)
        self._metrics = metrics
        self._readiness = readiness
        self._station_problems = station_problems
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._log = get_logger().bind(component="health")

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._client, self._host, self._port, limit=_LINE_LIMIT
        )
        bound = self._server.sockets[0].getsockname()
        self._log.info("health.listening", host=bound[0], port=bound[1])
        return bound[0], bound[1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= MAX_CLIENTS:
            writer.close()
            return
        self._clients.add(task)
        try:
            await self._exchange(reader, writer)
        except asyncio.CancelledError:
            # close() ends the connections still open. Python 3.11's streams callback would report a
            # cancelled client task as an error, so the cancellation ends here.
            pass
        finally:
            self._clients.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    method, path = await _read_request(reader)
            except (
                TimeoutError,
                ValueError,
                ConnectionError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ):
                status, content_type, body, method = 400, "text/plain", b"bad request\n", "GET"
            else:
                status, content_type, body = self._answer(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n"
            )
            if status == 405:
                head += "Allow: GET, HEAD\r\n"
            writer.write(head.encode("ascii") + b"\r\n" + (b"" if method == "HEAD" else body))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if path not in ("/health", "/ready", "/metrics"):
            return 404, "text/plain; charset=utf-8", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        if path == "/health":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE, self._metrics.exposition()
        checks = self._readiness()
        ready = all(reason is None for reason in checks.values())
        answer: dict[str, object] = {
            "ready": ready,
            "checks": {name: reason or "ok" for name, reason in checks.items()},
        }
        stations = self._station_problems() if self._station_problems is not None else {}
        if stations:
            answer["stations"] = stations
        body = orjson.dumps(answer)
        return (200 if ready else 503), "application/json", body + b"\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of one request; its header lines are read and ignored."""
    line = await reader.readuntil(b"\n")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    method, target = parts[0], parts[1]
    for _ in range(_MAX_HEADER_LINES):
        if (await reader.readuntil(b"\n")).strip() == b"":
            break
    else:
        raise ValueError("too many header lines")
    return method, target.split("?", 1)[0]
