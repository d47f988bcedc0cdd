"""The CSMS-facing client: one WebSocket per station to `<csms.url>/<station id>`, subprotocol ocpp2.0.1.

Rules
- Every connection attempt first waits its turn at the bridge-wide `Pacer` (a token bucket with jitter), so
  a CSMS restart brings its stations back at a steady rate instead of in one storm.
- Security profiles (OCPP 2.0.1 A00): 1 and 2 send HTTP Basic auth, username = station id, password as
  UTF-8 (A00.FR.205): the station's BasicAuthPassword when the CSMS set one (A01, durable, read from the
  core before every attempt: `NorthLink(password_of=...)`), else the configured one; 2 and 3 use the one shared `SSLContext` from `adapters.tls`; 3 authenticates with
  the bridge's client certificate. The profile never drops: a wss:// URL is required by the configuration.
- The CSMS must select `ocpp2.0.1`; otherwise the connection is closed and counts as refused.
- A proxy the environment names for the CSMS URL (`adapters.ocpp.ws_direct.proxy_for`, looked up once) is
  tunnelled through with HTTP CONNECT (`http://` and `https://` proxies); a SOCKS one is refused at
  start-up (`adapters.ops.preflight`). A proxy that refuses the tunnel is an unreachable CSMS.
- Connections are `adapters.ocpp.ws_direct.DirectClientConnection`s: their messages are handed to the
  station's driver as they arrive. Each gets `[csms]`'s `max_queued_frames`, `max_queued_bytes` and
  `write_timeout` as its `send_limits`: a CSMS connection that does not read what it is sent is
  dropped (1008) by the station's driver once they are reached, and connected again after back-off.
- Liveness: one `adapters.ocpp.keepalive.Keepalive` looks after every CSMS connection (pinged after
  `csms.ping_interval` without a message or pong from the CSMS, failed after `csms.ping_timeout` more)
  instead of websockets' task per connection.
- Every failure is a `CsmsUnavailable`: `status` is the HTTP status when the CSMS answered the handshake
  (401, 404, ...), None when it could not be reached.
- `NorthLink` keeps one station connected for good: after a failure or a loss it waits
  `BackoffPolicy.delay(attempt, random)` (OCPP-J's randomised doubling back-off; the policy read before
  every wait from `policy_of`, the station's RetryBackOff* variables, when given) and tries again; the
  attempt count starts over after a successful connection. `stop_reconnecting` (the bridge stopping,
  before anything is closed) ends its waits and attempts at once: no reconnect line after
  `bridge.stopping`.
"""

from __future__ import annotations

import asyncio
import base64
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from adapters.config import CsmsSection
from adapters.connection import Connection
from adapters.ocpp.keepalive import Keepalive
from adapters.ocpp.south import CLOSE_TIMEOUT, send_limits
from adapters.ocpp.ws_direct import DirectClientConnection, connect, proxy_for
from adapters.stopping import Stopped, unless_stopped
from bridge.north.backoff import BackoffPolicy, TokenBucket
from bridge.north.owned_variables import Defaults
from bridge.ocppj.errors import OcppVersion


class CsmsUnavailable(Exception):
    """A failed attempt: `reason` for the log, `kind` (one of `FAILURE_KINDS`) for the metric."""

    def __init__(self, reason: str, status: int | None = None, kind: str = "unreachable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.kind = kind


FAILURE_KINDS = (
    "unauthorized", "not_found", "http_error", "refused", "dns", "tls", "timeout", "unreachable",
    "subprotocol",
)  # fmt: skip


def failure_kind(exc: BaseException) -> str:
    """Why a connection attempt failed, in a closed vocabulary."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "unreachable"


class Pacer:
    """Connection attempts toward the CSMS, paced across all stations."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock or asyncio.get_running_loop().time
        self._bucket = TokenBucket(rate, burst, self._clock())
        self._rand = rand

    async def wait_turn(self) -> None:
        wait = self._bucket.reserve(self._clock(), self._rand())
        if wait > 0:
            await asyncio.sleep(wait)


def owned_defaults(csms: CsmsSection) -> Defaults:
    """The configuration's values of a station's bridge-owned variables (the CSMS may set others)."""
    return Defaults(
        backoff=BackoffPolicy(
            csms.retry_backoff_wait_minimum,
            csms.retry_backoff_random_range,
            csms.retry_backoff_repeat_times,
        ),
        security_profile=csms.security_profile,
    )


def basic_auth_header(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class CsmsConnector:
    def __init__(
        self,
        csms: CsmsSection,
        password_for: Callable[[str], SecretStr | None],
        ssl_context: ssl.SSLContext | None,
        pacer: Pacer,
    ) -> None:
        self._csms = csms
        self._password_for = password_for
        self._ssl = ssl_context
        self._pacer = pacer
        self.keepalive = Keepalive(csms.ping_interval, csms.ping_timeout, side="north")
        self._send_limits = send_limits(csms)
        # called with a failed attempt's kind (`ocpp_bridge_csms_connect_failures_total`)
        self.on_failure: Callable[[str], None] | None = None
        self._proxy: str | bool | None = True  # True: not looked up yet
        # station id -> why its last attempt failed, until one succeeds (for /ready's detail); the ids
        # are the configured stations', so this is bounded by the configuration
        self.last_failure: dict[str, str] = {}

    def _proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for the CSMS (websockets' own rule), looked up once: every
        station's URL has the CSMS's host and port, and the lookup walks the whole environment (with
        thousands of stations it was most of the CPU of their first connection attempts)."""
        if self._proxy is True:
            self._proxy = proxy_for(url)
        assert self._proxy is not False
        return self._proxy

    def url_for(self, station_id: str) -> str:
        return f"{self._csms.url}/{quote(station_id, safe='')}"

    async def connect(self, station_id: str, password: str | None = None) -> DirectClientConnection:
        """One paced attempt (`password`: the station's BasicAuthPassword set by the CSMS, which wins
        over the configured one). Raises CsmsUnavailable."""
        try:
            connection = await self._connect(station_id, password)
        except CsmsUnavailable as exc:
            self.last_failure[station_id] = exc.reason
            if self.on_failure is not None:
                self.on_failure(exc.kind)
            raise
        self.last_failure.pop(station_id, None)
        return connection

    async def _connect(self, station_id: str, password: str | None) -> DirectClientConnection:
        await self._pacer.wait_turn()
        headers: dict[str, str] = {}
        if self._csms.security_profile in (1, 2):
            configured = self._password_for(station_id)
            if password is None and configured is not None:
                password = configured.get_secret_value()
            if password is not None:
                headers["Authorization"] = basic_auth_header(station_id, password)
        try:
            url = self.url_for(station_id)
            connection = await connect(
                url,
                proxy=self._proxy_for(url),
                subprotocols=[Subprotocol(OcppVersion.V201.subprotocol)],
                additional_headers=headers,
                compression="deflate" if self._csms.compression else None,
                open_timeout=self._csms.connect_timeout,
                close_timeout=CLOSE_TIMEOUT,
                max_size=1 << 20,
                ssl=self._ssl,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            kind = {401: "unauthorized", 403: "unauthorized", 404: "not_found"}.get(status)
            raise CsmsUnavailable(
                f"CSMS answered HTTP {status}", status, kind or "http_error"
            ) from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise CsmsUnavailable(
                f"CSMS unreachable: {exc or type(exc).__name__}", kind=failure_kind(exc)
            ) from None
        if connection.subprotocol != OcppVersion.V201.subprotocol:
            await connection.close(1002, "ocpp2.0.1 required")
            raise CsmsUnavailable(
                f"CSMS did not accept subprotocol ocpp2.0.1 (chose {connection.subprotocol!r})",
                kind="subprotocol",
            )
        connection.send_limits = self._send_limits
        self.keepalive.watch(connection)
        return connection


class NorthLink:
    """Keeps one station's CSMS connection up, with back-off between attempts, until `stop_reconnecting`
    (the bridge stopping): then a back-off wait or an attempt under way ends at once and, once the
    connection (if any) ends, `run` returns without another attempt or log line about one."""

    def __init__(
        self,
        station_id: str,
        connector: CsmsConnector,
        policy: BackoffPolicy,
        log: Any,
        *,
        rand: Callable[[], float] = random.random,
        policy_of: Callable[[], BackoffPolicy] | None = None,
        password_of: Callable[[], str | None] | None = None,
    ) -> None:
        self.station_id = station_id
        self._connector = connector
        self._policy = policy
        self._policy_of = policy_of
        self._password_of = password_of
        self._log = log
        self._rand = rand
        self.connections = 0  # successful connections so far, for tests and metrics
        self._stopped = asyncio.Event()

    def stop_reconnecting(self) -> None:
        """No more attempts (the bridge is stopping); a connection that is up stays up until closed."""
        self._stopped.set()

    async def run(self, session: Callable[[Connection], Awaitable[None]]) -> None:
        """Connect, run `session` until the connection ends, repeat; until cancelled or, after
        `stop_reconnecting`, until the connection that is up (if any) ends."""
        attempt = 0
        first = True
        while not self._stopped.is_set():
            if not first:
                policy = self._policy_of() if self._policy_of is not None else self._policy
                delay = policy.delay(attempt, self._rand())
                attempt += 1
                self._log.info("csms.reconnect_wait", delay=round(delay, 3), attempt=attempt)
                try:
                    await unless_stopped(self._stopped, asyncio.sleep(delay))
                except Stopped:
                    return
            first = False
            try:
                password = self._password_of() if self._password_of is not None else None
                connection = await unless_stopped(
                    self._stopped, self._connector.connect(self.station_id, password)
                )
            except Stopped:
                return
            except CsmsUnavailable as exc:
                if self._stopped.is_set():
                    return
                self._log.warning("csms.connect_failed", reason=exc.reason, status=exc.status)
                continue
            attempt = 0
            self.connections += 1
            self._log.info("csms.connected")
            try:
                await session(connection)
            finally:
                await connection.close()
                self._log.info("csms.disconnected")
