"""The charger-facing WebSocket server: `ws[s]://<south.listen>/<station id>`.

Rules
- The station id is the last segment of the URL path, percent-decoded (OCPP-J 2.0.1 part 4 §3.1.1); a path
  prefix is allowed (`/ocpp/CP1` is station "CP1").
- Handshake answers, in this order: an unknown id gets HTTP 404 (part 4 §3.2); a station with a configured
  password gets 401 with a `WWW-Authenticate` challenge when the Basic credentials are missing or wrong
  (username must be the station id, A00.FR.204/207; compared in constant time), logged as
  `south.unauthorized` with the check that failed (`reason`: no Authorization header, not readable Basic
  credentials, user name is not the station id, wrong password); a second connection for a
  connected id gets 409 under the `reject` policy. A client certificate (`require_client_cert`) is
  checked by the TLS handshake, before any of these.
- Subprotocol: the station's configured protocol is selected when the charger offers it. Otherwise the
  handshake completes without a subprotocol and the connection is closed at once with 1002 (part 4 §3.2:
  "MUST complete the WebSocket handshake with a response without a Sec-WebSocket-Protocol header and then
  immediately close").
- Second connection for a connected id, policy `replace` (default): the new connection wins once it has
  authenticated, because a charger that reconnects usually does so after losing a link the bridge has not
  noticed yet (half-open). The old connection is closed with 1000 and its session ended before the new one
  starts; when several connect while the old one is being closed, only the newest is served (the others
  are closed with 1000), so one station never has two sessions. Every second connection is logged as the
  security-relevant event `south.duplicate_connection`.
- Liveness: a charger that has sent neither a message nor a pong for `ping_interval` is pinged, and
  one that then stays silent for `ping_timeout` is disconnected (1011), so a half-open connection is
  noticed within their sum plus 2 s of keepalive ticks plus the closing handshake's 3 s (45 s by
  default). One `adapters.ocpp.keepalive.Keepalive` looks after every charger connection (rather than a
  timer or task per connection).
  permessage-deflate is accepted.
- Optional TLS (`cert_file`/`key_file`), with client certificates requested or required (`ca_file`,
  `require_client_cert`).
- Refusals are bounded in the log: `south.unknown_station`, `south.unauthorized`,
  `south.duplicate_connection` and `south.subprotocol_refused` are logged at most `DIAGNOSTIC_BURST`
  per `DIAGNOSTIC_INTERVAL` seconds per (station, event) (every unknown id shares one station key, so
  a scan of made-up ids cannot grow the limiter), the next line saying how many were `suppressed`;
  each is counted in full by `on_refused(reason)` (`ocpp_bridge_south_refused_total`). A connection
  storm against one station wrote one line per attempt before (923,000 `south.duplicate_connection`
  lines in one abuse run). Connections that were served are logged in full (`south.connected`,
  `south.disconnected` with the close code and reason: every dropped link is logged).
- Connections are `adapters.ocpp.ws_direct.DirectServerConnection`s (`adapters.ocpp.ws_direct.serve`): their messages are handed to the
  station's driver as they arrive. Each gets `[south]`'s `max_queued_frames`, `max_queued_bytes` and
  `write_timeout` as its `send_limits`: a charger that does not read what it is sent is disconnected
  (1008) by its driver once they are reached.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import http
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from adapters.config import BridgeConfig, CsmsSection, OcppStation, SouthSection, split_host_port
from adapters.connection import Connection, SendLimits
from adapters.ocpp.keepalive import Keepalive
from adapters.ocpp.ws_direct import DirectServerConnection, Server, serve
from adapters.ops.logs import RefusalLog, get_logger

StationHandler = Callable[[OcppStation, Connection], Awaitable[None]]

_REALM = 'Basic realm="ocpp-bridge", charset="UTF-8"'
# Seconds granted to a closing handshake. A dead link never completes it, so this adds to the time a
# half-open connection takes to be noticed: ping_interval + ping_timeout + 2 s + CLOSE_TIMEOUT (45 s).
CLOSE_TIMEOUT = 3
# `south.unauthorized`'s reason: which check failed
AUTH_NO_HEADER = "no Authorization header"
AUTH_NOT_BASIC = "Authorization header is not readable Basic credentials"
AUTH_WRONG_USER = "user name is not the station id"
AUTH_WRONG_PASSWORD = "wrong password"


def station_id_from_path(path: str) -> str:
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def offered_subprotocols(headers: Headers) -> list[str]:
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        try:
            offered.extend(parse_subprotocol(value))
        except ValueError:
            continue
    return offered


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


class _Live:
    """One connected charger."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # a future rather than an Event (whose deque of waiters costs 600 bytes per station)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class SouthServer:
    def __init__(
        self,
        config: BridgeConfig,
        handler: StationHandler,
        ssl_context: Any = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._config = config
        self._settings = config.south
        self._stations = {s.id: s for s in config.stations if isinstance(s, OcppStation)}
        self._handler = handler
        self._ssl = ssl_context
        self._live: dict[str, _Live] = {}
        self._arrivals: dict[str, int] = {}  # connections per station so far: the newest one wins
        self._server: Server | None = None
        self._log = get_logger().bind(side="south")
        self._keepalive = Keepalive(
            self._settings.ping_interval, self._settings.ping_timeout, side="south"
        )
        self._send_limits = send_limits(self._settings)
        self._refusals = RefusalLog(on_refused, self._stations)

    def _refused(
        self, log: Any, station_id: str, event: str, counted_as: str, **fields: Any
    ) -> None:
        """A refusal: counted always (as `counted_as`), logged within bounds (module rules)."""
        now = asyncio.get_running_loop().time()
        self._refusals(log, station_id, event, counted_as, now, **fields)

    @property
    def connected(self) -> dict[str, Connection]:
        return {station_id: live.connection for station_id, live in self._live.items()}

    async def start(self) -> tuple[str, int]:
        host, port = split_host_port(self._settings.listen)
        self._server = await serve(
            self._serve,
            host,
            port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            compression="deflate" if self._settings.compression else None,
            max_size=self._settings.max_message_size,
            close_timeout=CLOSE_TIMEOUT,
            backlog=self._settings.listen_backlog,
            ssl=self._ssl,
        )
        bound = next(iter(self._server.sockets)).getsockname()
        return bound[0], bound[1]

    async def close(self) -> None:
        """Stop accepting; close every charger connection with 1001 and wait for their sessions."""
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self._keepalive.close()

    # --- handshake ------------------------------------------------------------------------------

    def _process_request(
        self, connection: DirectServerConnection, request: Request
    ) -> Response | None:
        station_id = station_id_from_path(request.path)
        station = self._stations.get(station_id)
        log = self._log.bind(station_id=station_id, peer=_peer(connection))
        if station is None:
            self._refused(
                log, station_id, "south.unknown_station", "unknown_station", path=request.path[:200]
            )
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"unknown station {station_id}\n")
        problem = self._auth_problem(station, request.headers)
        if problem is not None:
            self._refused(log, station_id, "south.unauthorized", "unauthorized", reason=problem)
            response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "authentication required\n")
            response.headers["WWW-Authenticate"] = _REALM
            return response
        if station_id in self._live and self._settings.duplicate_connection == "reject":
            self._refused(
                log, station_id, "south.duplicate_connection", "duplicate", policy="reject"
            )
            return connection.respond(
                http.HTTPStatus.CONFLICT, f"station {station_id} is already connected\n"
            )
        return None

    @staticmethod
    def _auth_problem(station: OcppStation, headers: Headers) -> str | None:
        """None when the charger may connect; else which check failed (for `south.unauthorized`)."""
        if station.password is None:
            return None
        if "Authorization" not in headers:
            return AUTH_NO_HEADER
        credentials = basic_credentials(headers)
        if credentials is None:
            return AUTH_NOT_BASIC
        username, password = credentials
        expected = station.password.get_secret_value().encode()
        password_ok = hmac.compare_digest(password.encode(), expected)
        if not hmac.compare_digest(username.encode(), station.id.encode()):
            return AUTH_WRONG_USER
        return None if password_ok else AUTH_WRONG_PASSWORD

    def _select_subprotocol(
        self, connection: DirectServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        request = connection.request  # the request being accepted (never None here)
        if request is None:
            return None
        station = self._stations.get(station_id_from_path(request.path))
        if station is not None and station.protocol in subprotocols:
            return Subprotocol(station.protocol)
        return None

    # --- connection ---------------------------------------------------------------------------

    async def _serve(self, connection: DirectServerConnection) -> None:
        assert connection.request is not None
        self._keepalive.watch(connection)
        connection.send_limits = self._send_limits
        station = self._stations[station_id_from_path(connection.request.path)]
        log = self._log.bind(station_id=station.id, protocol=station.protocol)
        if connection.subprotocol is None:
            offered = offered_subprotocols(connection.request.headers)
            self._refused(
                log, station.id, "south.subprotocol_refused", "subprotocol", offered=offered[:10]
            )
            await connection.close(
                1002, f"station {station.id} speaks {station.protocol}; offered {offered}"[:120]
            )
            return
        ticket = self._arrivals[station.id] = self._arrivals.get(station.id, 0) + 1
        previous = self._live.get(station.id)
        if previous is not None:
            self._refused(
                log,
                station.id,
                "south.duplicate_connection",
                "duplicate",
                policy=self._settings.duplicate_connection,
                old_peer=_peer(previous.connection),
                new_peer=_peer(connection),
            )
            if self._settings.duplicate_connection == "reject":
                await connection.close(1008, "station already connected")
                return
        while previous is not None:
            await previous.connection.close(1000, "replaced by a new connection")
            try:
                await asyncio.wait_for(
                    asyncio.shield(previous.done), self._settings.handshake_timeout
                )
            except TimeoutError:
                log.error("south.replace_timeout")
                break
            if self._arrivals[station.id] != ticket:  # a newer connection came meanwhile: it wins
                await connection.close(1000, "replaced by a new connection")
                # every dropped link is logged with its reason, this one too (it had no session)
                log.info(
                    "south.disconnected",
                    code=connection.close_code,
                    reason=connection.close_reason,
                    before_session=True,
                )
                return
            previous = self._live.get(station.id)
        live = _Live(connection)
        self._live[station.id] = live
        log.info("south.connected", peer=_peer(connection))
        try:
            await self._handler(station, connection)
        except Exception:
            log.exception("south.session_failed")
        finally:
            if self._live.get(station.id) is live:
                del self._live[station.id]
            if not live.done.done():
                live.done.set_result(None)
            log.info(
                "south.disconnected",
                code=connection.close_code,
                reason=connection.close_reason,
            )


def send_limits(section: SouthSection | CsmsSection) -> SendLimits:
    """What may wait for one peer of that side to read it (`max_queued_*`, `write_timeout`)."""
    return SendLimits(section.max_queued_frames, section.max_queued_bytes, section.write_timeout)


def _peer(connection: Connection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
