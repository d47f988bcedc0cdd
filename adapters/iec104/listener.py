"""IEC 104 chargers that dial in: `[south] iec104_listen`, identified by common address, handed to their link.

```python
listener = Iec104Listener(address, links_by_ca, duplicate="replace", log=..., ssl=None)
host, port = await listener.start()
await listener.close()
```

Rules
- Each accepted connection runs an `Identification` (`bridge.stations.iec104.identify`): STARTDT act, then a
  general interrogation to the global address; the common address of the charger's first ASDU says
  which configured `dial = "in"` station it is. The connection (its started link, the ASDUs read so
  far) then belongs to that station's `Iec104Link.attach`.
- With registration layouts (`registrations`, from the dial-in stations' tables), a charger that
  sends a registration frame first is found by the frame's id among the stations'
  `registration_id`s: answered with the layout's `accepted` frame, then STARTDT act and the hand-over;
  an id no station has gets the `refused` frame, is logged (`iec104.unknown_registration`, with the id)
  and closed.
- A common address no dial-in station has is refused: logged (`iec104.unknown_charger`, with the
  address and the peer) and closed. A station that already has a connection follows `duplicate`:
  `replace` closes the old connection, `reject` closes the new one (`iec104.duplicate_refused`).
- A connection that is not identified within the timeout (with TLS, its handshake must end within it
  too), or whose bytes break the link, is closed and logged with the reason. At most `MAX_PENDING`
  connections wait for identification at once; more are closed at once (a connection storm cannot pin
  memory).
- Every refusal is counted through `on_refused(kind)`; its warning is logged at most
  `DIAGNOSTIC_BURST` per `DIAGNOSTIC_INTERVAL` per (station, event, kind), connections not identified
  as a station sharing one key (`adapters.ops.logs.RefusalLog`), the next line saying how many were
  `suppressed`: a connection storm of peers that never identify themselves cannot fill the log.
- Under leases (`admit`: `TranslatedHost.admit`, adapters/translated.py): an identified charger's connection is handed over
  only once `admit(station_id)` is true (the station's lease taken here: the replica a charger dials
  into serves it); its reading is paused meanwhile. Refused (the store unreachable): logged
  `iec104.refused` with kind `lease` and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

from adapters.config import split_host_port
from adapters.iec104.link import Iec104Link
from adapters.ops.logs import RefusalLog
from bridge.stations.iec104.apci import LinkParameters
from bridge.stations.iec104.identify import (
    Identification,
    Identified,
    NotIdentified,
    RegisteredCharger,
)
from bridge.stations.iec104.registration import RegistrationSpec

MAX_PENDING: Final = 4096


class _Pending(asyncio.Protocol):
    """A connection until it is identified."""

    def __init__(self, listener: Iec104Listener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.who: Identification | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, though not an asyncio.Transport subclass under uvloop (the bridge's
        # default loop): an isinstance check would refuse every connection there
        self.transport = cast(asyncio.Transport, transport)
        listener = self._listener
        if len(listener.pending) >= MAX_PENDING:
            self._done = True
            listener.refused("overload", "too many connections waiting to be identified", self)
            self.transport.abort()
            return
        listener.pending.add(self)
        self.who = Identification(
            listener.parameters,
            now=self._loop.time(),
            timeout=listener.timeout,
            registrations=listener.registrations,
        )
        self._after(None)

    def data_received(self, data: bytes) -> None:
        if self.who is not None and not self._done:
            self._after(self.who.receive_data(data, self._loop.time()))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if not self._done:
            self._done = True
            self._listener.refused("peer_closed", "closed before it was identified", self)

    def _fire(self) -> None:
        self._timer = None
        if self.who is not None and not self._done:
            self._after(self.who.handle_timer(self._loop.time()))

    def _after(self, result: Identified | RegisteredCharger | NotIdentified | None) -> None:
        who, transport = self.who, self.transport
        assert who is not None and transport is not None
        out = who.data_to_send()
        if out:
            transport.write(out)
        if result is None:
            deadline = who.next_deadline()
            if deadline is not None:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = self._loop.call_at(deadline, self._fire)
            return
        self._done = True
        self._listener.pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if isinstance(result, NotIdentified):
            self._listener.refused(result.kind, result.reason, self)
            transport.close()
            return
        if isinstance(result, RegisteredCharger):
            self._listener.registered(result, self)
            return
        self._listener.identified(result.common_address, self)


class Iec104Listener:
    def __init__(
        self,
        address: str,
        links: dict[int, Iec104Link],
        *,
        log: Any,
        registered_links: dict[str, Iec104Link] | None = None,
        registrations: tuple[RegistrationSpec, ...] = (),
        duplicate: str = "replace",
        ssl_context: ssl.SSLContext | None = None,
        parameters: LinkParameters | None = None,
        timeout: float = 30.0,
        backlog: int = 4096,
        on_refused: Callable[[str], None] | None = None,
        admit: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._host, self._port = split_host_port(address)
        self._links = links
        self._registered_links = registered_links or {}
        self.registrations = registrations
        self._log = log
        self._duplicate = duplicate
        self._ssl = ssl_context
        self.parameters = parameters or LinkParameters()
        self.timeout = timeout
        self._backlog = backlog
        self._on_refused = on_refused
        known = {link.station_id for link in links.values()}
        known |= {link.station_id for link in self._registered_links.values()}
        self._refusals = RefusalLog(on_refused, known)
        self._admit = admit
        self._admitting: set[asyncio.Task[None]] = set()
        self.pending: set[_Pending] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Pending(self),
            self._host,
            self._port,
            ssl=self._ssl,
            backlog=self._backlog,
            # the TLS handshake is part of the identification's time, not asyncio's 60 s on top
            ssl_handshake_timeout=self.timeout if self._ssl is not None else None,
        )
        bound = self._server.sockets[0].getsockname()
        self._log.info("iec104.listening", host=bound[0], port=bound[1])
        return bound[0], bound[1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._admitting):
            task.cancel()
        for pending in list(self.pending):
            if pending.transport is not None:
                pending.transport.abort()
        self.pending.clear()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    def identified(self, common_address: int, pending: _Pending) -> None:
        transport, who = pending.transport, pending.who
        assert transport is not None and who is not None
        link = self._links.get(common_address)
        if link is None:
            self.refused(
                "unknown_charger",
                f"no dial-in station has common address {common_address}",
                pending,
                common_address=common_address,
            )
            transport.close()
            return
        if link.connected and self._duplicate == "reject":
            self.refused(
                "duplicate",
                f"station {link.station_id} (common address {common_address}) is connected already",
                pending,
                common_address=common_address,
                station_id=link.station_id,
            )
            transport.close()
            return

        def attach() -> None:
            self._log.info(
                "iec104.identified",
                station_id=link.station_id,
                common_address=common_address,
                peer=_peer(transport),
            )
            link.attach(transport, who.link, who.asdus, b"")

        self._hand_over(link, pending, attach)

    def registered(self, found: RegisteredCharger, pending: _Pending) -> None:
        transport, who = pending.transport, pending.who
        assert transport is not None and who is not None
        link = self._registered_links.get(found.registration_id)
        if link is None or (link.connected and self._duplicate == "reject"):
            transport.write(found.spec.refused)
            if link is None:
                self._refusals(
                    self._log,
                    None,
                    "iec104.unknown_registration",
                    "unknown_registration",
                    asyncio.get_running_loop().time(),
                    registration_id=found.registration_id[:64],
                    peer=_peer(transport),
                )
            else:
                self.refused(
                    "duplicate",
                    f"station {link.station_id} (registration id {found.registration_id[:64]}) is"
                    " connected already",
                    pending,
                    station_id=link.station_id,
                )
            transport.close()
            return

        def attach() -> None:
            transport.write(found.spec.accepted)
            now = asyncio.get_running_loop().time()
            who.start_link(now)
            transport.write(who.data_to_send())
            self._log.info(
                "iec104.identified",
                station_id=link.station_id,
                registration_id=found.registration_id,
                peer=_peer(transport),
            )
            link.attach(transport, who.link, [], found.rest)

        self._hand_over(link, pending, attach)

    def _hand_over(self, link: Iec104Link, pending: _Pending, attach: Callable[[], None]) -> None:
        """`attach()` now, or under leases once the station is admitted here (module rules)."""
        if self._admit is None:
            attach()
            return
        transport = pending.transport
        assert transport is not None
        transport.pause_reading()
        task = asyncio.create_task(self._admitted(link, pending, attach))
        self._admitting.add(task)
        task.add_done_callback(self._admitting.discard)

    async def _admitted(
        self, link: Iec104Link, pending: _Pending, attach: Callable[[], None]
    ) -> None:
        transport = pending.transport
        assert transport is not None and self._admit is not None
        try:
            admitted = await self._admit(link.station_id)
        except Exception:  # noqa: BLE001 - the host logs why; the charger tries again
            admitted = False
        if transport.is_closing():
            return  # the charger left meanwhile
        if not admitted:
            self.refused(
                "lease",
                f"station {link.station_id} cannot be served here now",
                pending,
                station_id=link.station_id,
            )
            transport.close()
            return
        attach()
        transport.resume_reading()

    def refused(
        self,
        kind: str,
        reason: str,
        pending: _Pending,
        *,
        common_address: int | None = None,
        station_id: str | None = None,
    ) -> None:
        transport = pending.transport
        self._refusals(
            self._log,
            station_id,
            "iec104.unknown_charger" if kind == "unknown_charger" else "iec104.refused",
            kind,
            asyncio.get_running_loop().time(),
            kind=kind,
            reason=reason[:300],
            common_address=common_address,
            peer=_peer(transport) if transport is not None else None,
        )


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
