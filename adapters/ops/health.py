"""The health and metrics endpoint on `[bridge] health`: HTTP/1.1 by h11, on the event loop's transports.

Rules
- `GET /health`: 200 while the process serves requests at all (liveness).
- `GET /ready`: 200 when every readiness check of the bridge itself passes, else 503; the body is JSON
  either way, `{"ready": false, "checks": {"south": "listener not up", "store": "ok", ...}, "stations":
  {...}}`. `stations` (from the runtime's `stations_report`) counts every station (`total`, `up`,
  `down`, `charger_side_down`, `csms_side_down`) and lists the first 100 down by id with why on each
  side (`listed`, then `more`). Stations never make the bridge unready: a charger that is off is no
  reason for an orchestrator to restart the bridge serving the others.
- `GET /metrics`: the Prometheus text format of the runtime's private registry.
- With a `status` source (`[bridge] status_page = true`): `GET /` and `GET /status` answer the status
  page (HTML), `GET /status.json` the same snapshot as JSON; the query string (`q`, `problems`,
  `page`, `limit`) chooses the stations (`adapters.ops.status`). Without one those paths are 404.
- `HEAD` answers like `GET` without a body; any other method gets 405, any other path 404. A request
  h11 cannot read (not HTTP, raw non-ASCII bytes in its path, no `Host` in HTTP/1.1, a head over
  `MAX_HEAD` bytes) gets the status h11 names for it (400, 431). Every answer has a Content-Length and
  `Connection: close`; one request per connection.
- Reading HTTP is h11's (parsing, validation, framing); this module only moves bytes between it and the
  transport. Why h11: pure Python with no dependencies, the HTTP/1.1 engine under uvicorn, httpx and
  hypercorn, and sans-I/O, so it runs on uvloop's transports unchanged; aiohttp's server would bring
  seven packages, and uvicorn's installs its own signal handlers.
- Idle clients cannot lock probes out: a connection costs one small protocol object and one timer, no
  task. Each gets `REQUEST_TIMEOUT` seconds from its arrival to send its request head and take the
  answer; then one that sent no complete request is answered 408 and closed, and one whose answer is
  still not written (a client that does not read) is aborted. At most `MAX_CONNECTIONS` are open at once; a new one beyond that closes the
  oldest, so a new probe is always read.
- Everything runs on the event loop's thread, so the readiness and metrics callbacks may read runtime
  state without locks. `close()` stops listening and ends every connection still open.
- Bind it to loopback (the default) unless something outside the host or container must scrape it; it has
  no authentication.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import h11
import orjson

from adapters.config import split_host_port
from adapters.ops.logs import get_logger
from adapters.ops.metrics import CONTENT_TYPE, BridgeMetrics
from adapters.ops.status import render_html

# name -> None when the check passes, else the reason it does not
Readiness = Callable[[], dict[str, str | None]]
# /ready's "stations": counts and the stations that are down, with why (informational)
StationProblems = Callable[[], dict[str, Any]]
# a URL's query string -> the status page's snapshot (`adapters.ops.status`)
StatusSource = Callable[[str], dict[str, Any]]

REQUEST_TIMEOUT = 5.0
MAX_CONNECTIONS = 4096
MAX_HEAD = 8192

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_STATUS_PATHS = frozenset({"/", "/status", "/status.json"})

Answer = tuple[int, str, bytes]


class HealthServer:
    def __init__(
        self,
        address: str,
        metrics: BridgeMetrics,
        readiness: Readiness,
        station_problems: StationProblems | None = None,
        status: StatusSource | None = None,
    ) -> None:
        self._host, self._port = split_host_port(address)
        self._metrics = metrics
        self._readiness = readiness
        self._station_problems = station_problems
        self._status = status
        self._server: asyncio.Server | None = None
        # open connections, oldest first (a dict keeps insertion order)
        self._connections: dict[_Connection, None] = {}
        self._log = get_logger().bind(component="health")

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self._host, self._port)
        bound = self._server.sockets[0].getsockname()
        self._log.info("health.listening", host=bound[0], port=bound[1])
        return bound[0], bound[1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.abort()
        await self._server.wait_closed()
        self._server = None

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def _opened(self, connection: _Connection) -> None:
        self._connections[connection] = None
        if len(self._connections) > MAX_CONNECTIONS:
            next(iter(self._connections)).abort()

    def _closed(self, connection: _Connection) -> None:
        self._connections.pop(connection, None)

    def answer(self, method: str, path: str, query: str = "") -> Answer:
        status_path = self._status is not None and path in _STATUS_PATHS
        if path not in ("/health", "/ready", "/metrics") and not status_path:
            return 404, _TEXT, b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n"
        if status_path:
            assert self._status is not None
            snap = self._status(query)
            if path == "/status.json":
                return 200, "application/json", orjson.dumps(snap) + b"\n"
            return 200, _HTML, render_html(snap)
        if path == "/health":
            return 200, _TEXT, b"ok\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE, self._metrics.exposition()
        checks = self._readiness()
        ready = all(reason is None for reason in checks.values())
        answer: dict[str, object] = {
            "ready": ready,
            "checks": {name: reason or "ok" for name, reason in checks.items()},
        }
        if self._station_problems is not None:
            answer["stations"] = self._station_problems()
        body = orjson.dumps(answer)
        return (200 if ready else 503), "application/json", body + b"\n"


class _Connection(asyncio.Protocol):
    """One client: h11 reads its request, one answer, then the connection is closed."""

    def __init__(self, server: HealthServer) -> None:
        self._server = server
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._transport: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._answered = False

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REQUEST_TIMEOUT, self._timed_out)
        self._server._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._server._closed(self)

    def data_received(self, data: bytes) -> None:
        if not self._answered:
            self._http.receive_data(data)
            self._read()

    def eof_received(self) -> bool:
        if not self._answered:
            self._http.receive_data(b"")
            self._read()
        return False  # the transport closes once the answer is written

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _read(self) -> None:
        try:
            event = self._http.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in _REASONS else 400
            self._respond("GET", (status, _TEXT, b"bad request\n"))
            return
        if isinstance(event, h11.Request):
            method = event.method.decode("ascii")
            path, _, query = event.target.decode("ascii").partition("?")
            self._respond(method, self._server.answer(method, path, query))
        elif event is not h11.NEED_DATA:  # the client closed before its request was complete
            self._transport.close()

    def _respond(self, method: str, answer: Answer) -> None:
        status, content_type, body = answer
        self._answered = True
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
        if status == 405:
            headers.append(("Allow", "GET, HEAD"))
        try:
            data = self._http.send(
                h11.Response(status_code=status, headers=headers, reason=_REASONS[status])
            )
            if method != "HEAD":
                data = (data or b"") + (self._http.send(h11.Data(data=body)) or b"")
            data = (data or b"") + (self._http.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            self._transport.abort()
            return
        self._transport.write(data)
        self._transport.close()  # after the answer is written; the timer aborts a client that never reads

    def _timed_out(self) -> None:
        self._timer = None
        if self._answered or self._transport.is_closing():
            self._transport.abort()
        else:
            self._respond("GET", (408, _TEXT, b"request timeout\n"))
