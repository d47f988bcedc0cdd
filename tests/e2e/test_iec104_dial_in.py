"""IEC 104 chargers that dial in to `[south] iec104_listen`, end to end on loopback.

The charger here is `WireCharger`: an asyncio TCP client whose every byte is spelled out in this file
(its own APCI and ASDU encoding, independent of the bridge's codec). It answers STARTDT act, TESTFR
act and every I-frame with an S-frame, answers interrogations with its points (holstered, work status
idle, output contactor off, the energy register) and confirms commands. The CSMS is the `ocpp` package
(`tests.peers.Csms`); between them runs the real bridge (`Runtime`) with the shipped table
`gb-dc-charger` (common address 1, Asia/Shanghai). Test names carry the OCPP 2.0.1 use case or the
104 rule they check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Any

import structlog
from ocpp.v201 import call as call201
from structlog.testing import capture_logs

from adapters.config import Iec104Station
from adapters.iec104.link import Iec104Link
from adapters.iec104.listener import Iec104Listener
from adapters.iec104.station import load_table, session_settings
from adapters.ops.logs import DIAGNOSTIC_BURST
from adapters.runtime import Runtime
from bridge.stations.iec104.session import Session104
from bridge.stations.iec104.southbound import LinkEvent, LinkUp, PointUpdate
from tests.adapters.test_health import scrape, value
from tests.e2e.conftest import bridge_config, running_bridge
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import Csms, running_csms

STATION = "GB104-IN"
CA = 1
PLUG, HOLSTERED, CHARGING, CONTACTOR = 0x0021, 0x0022, 0x0023, 0x0025
WORK_STATUS, ENERGY, START_STOP = 0x400F, 0x6401, 0x6001

STARTDT_ACT, STARTDT_CON = 0x07, 0x0B
STOPDT_ACT, STOPDT_CON = 0x13, 0x23
TESTFR_ACT, TESTFR_CON = 0x43, 0x83
M_SP_NA_1, M_DP_NA_1, M_ME_NC_1, M_IT_NA_1 = 1, 3, 13, 15
C_SC_NA_1, C_IC_NA_1, C_CI_NA_1, C_CS_NA_1 = 45, 100, 101, 103
COMMAND_TYPES = frozenset({45, 46, 47, 48, 49, 50, 51, 58, 59, 60, 61, 62, 63, 64, 105})
COT_SPONT, COT_ACT, COT_CON, COT_TERM, COT_INROGEN, COT_REQCOGEN = 3, 6, 7, 10, 20, 37


# --- the charger's bytes ---------------------------------------------------------------------------


def u_frame(code: int) -> bytes:
    return bytes([0x68, 4, code, 0, 0, 0])


def s_frame(nr: int) -> bytes:
    return bytes([0x68, 4, 0x01, 0x00, (nr << 1) & 0xFF, nr >> 7])


def i_frame(ns: int, nr: int, payload: bytes) -> bytes:
    control = bytes([(ns << 1) & 0xFF, ns >> 7, (nr << 1) & 0xFF, nr >> 7])
    return bytes([0x68, len(payload) + 4]) + control + payload


def asdu(type_id: int, cot: int, ca: int, address: int, element: bytes, *,
         negative: bool = False) -> bytes:  # fmt: skip
    """One information object, SQ=0: type, VSQ 1, COT (+P/N), originator 0, CA, IOA (3), element."""
    head = bytes([type_id, 1, cot | (0x40 if negative else 0), 0])
    return head + ca.to_bytes(2, "little") + address.to_bytes(3, "little") + element


def element(type_id: int, point: Any) -> bytes:
    if type_id == M_SP_NA_1:
        return bytes([1 if point else 0])
    if type_id == M_DP_NA_1:
        return bytes([int(point)])
    if type_id == M_ME_NC_1:
        return struct.pack("<fB", float(point), 0)
    assert type_id == M_IT_NA_1
    return struct.pack("<iB", int(point), 0)


IDLE_POINTS: dict[int, tuple[int, Any]] = {
    # the alarms the table's Faulted and Unavailable rules read: all clear
    **{alarm: (M_SP_NA_1, False) for alarm in (0x0001, 0x0007, 0x000B, 0x000C, 0x0027, 0x002D)},
    PLUG: (M_SP_NA_1, False),
    HOLSTERED: (M_SP_NA_1, True),
    CHARGING: (M_SP_NA_1, False),
    CONTACTOR: (M_DP_NA_1, 1),
    WORK_STATUS: (M_ME_NC_1, 2.0),
}


class WireCharger:
    """One 104 charger (the controlled station) on one TCP connection, in bytes."""

    def __init__(
        self, ca: int = CA, *, confirm: bool = True, answer: bool = True, ack: bool = True
    ) -> None:
        self.ca = ca
        self.ack = ack  # acknowledge every I-frame with an S-frame
        self.confirm = confirm  # confirm commands (ACT_CON)
        self.answer = answer  # answer interrogations, clock sync
        self.points = dict(IDLE_POINTS)
        self.counters = {ENERGY: 100_000}
        self.vs = 0
        self.vr = 0
        self.received: list[bytes] = []  # ASDUs from the bridge, in order
        self.u_received: list[int] = []
        self.changed = asyncio.Event()
        self.closed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    # -- connection --

    async def connect(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls else None
        )
        self.serve(reader, writer)

    def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._task = asyncio.create_task(self._run(reader))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    # -- what the test makes it send --

    def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    def send(self, payload: bytes) -> None:
        self.write(i_frame(self.vs, self.vr, payload))
        self.vs = (self.vs + 1) % 32768

    def update(self, address: int, point: Any, *, ca: int | None = None) -> None:
        """A spontaneous change (COT 3), from `ca` (default: its own common address)."""
        type_id = self.points[address][0]
        if ca is None:
            self.points[address] = (type_id, point)
        self.send(asdu(type_id, COT_SPONT, self.ca if ca is None else ca, address, element(type_id, point)))  # fmt: skip

    def commands(self) -> list[tuple[int, int, bytes]]:
        """The commands the bridge sent: (type id, IOA, element)."""
        return [
            (a[0], int.from_bytes(a[6:9], "little"), a[9:])
            for a in self.received
            if a[0] in COMMAND_TYPES and a[2] & 0x3F == COT_ACT
        ]

    def of_type(self, type_id: int) -> list[bytes]:
        return [a for a in self.received if a[0] == type_id]

    # -- inside --

    async def _run(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                assert head[0] == 0x68, f"start octet {head[0]:#x}"
                body = await reader.readexactly(head[1])
                control = body[0]
                if control & 1 == 0:  # I-frame
                    self.vr = (self.vr + 1) % 32768
                    if self.ack:
                        self.write(s_frame(self.vr))
                    self._asdu(body[4:])
                elif control & 3 == 3:  # U-frame
                    self.u_received.append(control)
                    if control == STARTDT_ACT:
                        self.write(u_frame(STARTDT_CON))
                    elif control == TESTFR_ACT:
                        self.write(u_frame(TESTFR_CON))
                    elif control == STOPDT_ACT:
                        self.write(u_frame(STOPDT_CON))
                self.changed.set()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
            self.changed.set()

    def _reply(self, request: bytes, cot: int, *, negative: bool = False) -> None:
        """The request mirrored with another cause, from this charger's common address."""
        head = bytes([request[0], request[1], cot | (0x40 if negative else 0), request[3]])
        self.send(head + self.ca.to_bytes(2, "little") + request[6:])

    def _asdu(self, payload: bytes) -> None:
        self.received.append(payload)
        type_id = payload[0]
        if type_id == C_IC_NA_1 and self.answer:
            self._reply(payload, COT_CON)
            for address, (point_type, point) in self.points.items():
                self.send(asdu(point_type, COT_INROGEN, self.ca, address, element(point_type, point)))  # fmt: skip
            self._reply(payload, COT_TERM)
        elif type_id == C_CI_NA_1 and self.answer:
            self._reply(payload, COT_CON)
            for address, count in self.counters.items():
                self.send(asdu(M_IT_NA_1, COT_REQCOGEN, self.ca, address, element(M_IT_NA_1, count)))  # fmt: skip
            self._reply(payload, COT_TERM)
        elif (type_id == C_CS_NA_1 and self.answer) or (type_id in COMMAND_TYPES and self.confirm):
            self._reply(payload, COT_CON)


@contextlib.asynccontextmanager
async def dialled_in(port: int, ca: int = CA, **kwargs: Any) -> AsyncIterator[WireCharger]:
    charger = WireCharger(ca, **kwargs)
    await charger.connect(port)
    try:
        yield charger
    finally:
        await charger.close()


def dial_in_station(station_id: str = STATION) -> dict[str, Any]:
    return {
        "id": station_id,
        "protocol": "iec104",
        "dial": "in",
        "connectors": 1,
        "mapping": "gb-dc-charger",
    }


def dial_in_config(csms: Csms, *stations: dict[str, Any], **south: Any) -> Any:
    return bridge_config(
        csms.url,
        list(stations) or [dial_in_station()],
        south={"iec104_listen": "127.0.0.1:0", **south},
        bridge={"health": "127.0.0.1:0"},
    )


def listen_port(runtime: Runtime) -> int:
    assert runtime.iec104_address is not None
    assert runtime.iec104_address[0] == "127.0.0.1"
    return runtime.iec104_address[1]


def payloads(csms: Csms, action: str, station_id: str = STATION) -> list[dict[str, Any]]:
    return [
        p
        for s in csms.history
        if s.station_id == station_id
        for p in s.charge_point.payloads(action)
    ]


def statuses(csms: Csms, station_id: str = STATION) -> list[str]:
    return [p["connector_status"] for p in payloads(csms, "StatusNotification", station_id)]


# --- end to end ----------------------------------------------------------------------------------------


async def test_b01_f01_e02_a_charger_that_dials_in_boots_starts_remotely_and_charges() -> None:
    async with running_csms() as csms, running_bridge(dial_in_config(csms)) as runtime:
        async with dialled_in(listen_port(runtime)) as charger:
            # identification: STARTDT act, then a general interrogation to the global address 0xFFFF
            await charger.wait_for(lambda: len(charger.received) >= 1)
            assert charger.u_received[0] == STARTDT_ACT
            assert charger.received[0] == bytes.fromhex("64010600ffff00000014")
            session = await csms.session(STATION)
            cp = session.charge_point
            await csms.wait_for(lambda: "BootNotification" in cp.actions())
            await csms.wait_for(lambda: "Available" in statuses(csms))
            # then the station's own start-up, to its common address: clock sync, GI, CI
            await charger.wait_for(lambda: charger.of_type(C_CI_NA_1) != [])
            assert charger.of_type(C_CS_NA_1)[0][:9] == bytes.fromhex("670106000100000000")
            assert bytes.fromhex("64010600010000000014") in charger.received
            assert bytes.fromhex("65010600010000000005") in charger.received

            charger.update(PLUG, True)
            await csms.wait_for(lambda: "Occupied" in statuses(csms))
            answer = await cp.call(
                call201.RequestStartTransaction(
                    id_token={"id_token": "04A2B3C4", "type": "ISO14443"},
                    remote_start_id=7,
                    evse_id=1,
                )
            )
            assert answer.status == "Accepted"
            # C_SC_NA_1 act to CA 1, IOA 0x6001, SCO: on, QU 0, execute
            assert charger.commands() == [(C_SC_NA_1, START_STOP, b"\x01")]
            assert bytes.fromhex("2d010600010001600001") in charger.received

            charger.update(CHARGING, True)
            await csms.wait_for(lambda: len(payloads(csms, "TransactionEvent")) >= 1)
            started = payloads(csms, "TransactionEvent")[0]
            assert started["event_type"] == "Started"
            assert started["transaction_info"]["remote_start_id"] == 7
            begin = started["meter_value"][0]["sampled_value"][0]
            assert begin["value"] == 1_000_000  # 100,000 counts x 10 Wh, from the CI answer
        assert csms.problems() == []


async def test_f01_a_negative_act_con_makes_the_remote_start_rejected() -> None:
    async with running_csms() as csms, running_bridge(dial_in_config(csms)) as runtime:
        async with dialled_in(listen_port(runtime), confirm=False) as charger:
            cp = (await csms.session(STATION)).charge_point
            await csms.wait_for(lambda: "Available" in statuses(csms))
            charger.update(PLUG, True)
            await csms.wait_for(lambda: "Occupied" in statuses(csms))
            call = asyncio.create_task(
                cp.call(
                    call201.RequestStartTransaction(
                        id_token={"id_token": "AA", "type": "ISO14443"}, remote_start_id=8
                    )
                )
            )
            await charger.wait_for(lambda: charger.commands() != [])
            request = next(a for a in charger.received if a[0] == C_SC_NA_1)
            charger.send(request[:2] + bytes([COT_CON | 0x40]) + request[3:])  # P/N: negative
            async with asyncio.timeout(10):
                answer = await call
            assert answer.status == "Rejected"
            assert payloads(csms, "TransactionEvent") == []
        assert csms.problems() == []


async def test_an_unknown_common_address_is_refused_logged_and_counted() -> None:
    async with running_csms() as csms, running_bridge(dial_in_config(csms)) as runtime:
        with capture_logs() as logs:
            async with dialled_in(listen_port(runtime), ca=9) as stranger:
                async with asyncio.timeout(10):
                    await stranger.closed.wait()  # the bridge closed it
        refusals = [e for e in logs if e["event"] == "iec104.unknown_charger"]
        assert len(refusals) == 1
        assert refusals[0]["common_address"] == 9
        samples = await scrape(runtime)
        refused = value(samples, "ocpp_bridge_iec104_refused_total", reason="unknown_charger")
        assert refused == 1.0
        # the station for CA 1 is still free for its own charger
        async with dialled_in(listen_port(runtime)):
            await csms.wait_for(lambda: "Available" in statuses(csms))


async def test_a_storm_of_strangers_is_counted_in_full_and_logged_within_bounds() -> None:
    """12 chargers with common addresses no station has and 12 connections closed before they said
    anything: every one refused and counted, at most DIAGNOSTIC_BURST warning lines of each kind
    (before: one line per connection, so a storm wrote the log full)."""
    async with running_csms() as csms, running_bridge(dial_in_config(csms)) as runtime:
        with capture_logs() as logs:
            for ca in range(9, 21):
                async with dialled_in(listen_port(runtime), ca=ca) as stranger:
                    async with asyncio.timeout(10):
                        await stranger.closed.wait()
            for _ in range(12):
                _, writer = await asyncio.open_connection("127.0.0.1", listen_port(runtime))
                writer.transport.abort()
            async with asyncio.timeout(10):
                while True:
                    samples = await scrape(runtime)
                    closed = value(
                        samples, "ocpp_bridge_iec104_refused_total", reason="peer_closed"
                    )
                    if closed == 12.0:
                        break
                    await asyncio.sleep(0.05)
        unknown = value(samples, "ocpp_bridge_iec104_refused_total", reason="unknown_charger")
        assert unknown == 12.0
    strangers = [e for e in logs if e["event"] == "iec104.unknown_charger"]
    assert [e["common_address"] for e in strangers] == list(range(9, 9 + DIAGNOSTIC_BURST))
    gone = [e for e in logs if e["event"] == "iec104.refused" and e["kind"] == "peer_closed"]
    assert len(gone) == DIAGNOSTIC_BURST


async def test_a_duplicate_connection_replaces_the_old_one_with_duplicate_connection_replace() -> (
    None
):
    async with running_csms() as csms:
        config = dial_in_config(csms, duplicate_connection="replace")
        async with running_bridge(config) as runtime:
            port = listen_port(runtime)
            async with dialled_in(port) as first:
                await csms.wait_for(lambda: "Available" in statuses(csms))
                async with dialled_in(port) as second:
                    async with asyncio.timeout(10):
                        await first.closed.wait()
                    await second.wait_for(lambda: second.of_type(C_CI_NA_1) != [])
                    second.update(PLUG, True)  # the station listens to the new connection
                    await csms.wait_for(lambda: "Occupied" in statuses(csms))
                    assert not second.closed.is_set()
            samples = await scrape(runtime)
            drops = value(samples, "ocpp_bridge_iec104_link_drops_total", reason="replaced")
            assert drops == 1.0
        assert csms.problems() == []


async def test_garbage_from_a_dial_in_charger_drops_only_its_link_a_dial_out_station_keeps_working() -> (
    None
):
    async with running_csms() as csms, idle_charger() as c104_charger:
        dial_out = station_entry("GB104-OUT", c104_charger.port)
        config = dial_in_config(csms, dial_in_station(), dial_out)
        async with running_bridge(config) as runtime:
            async with dialled_in(listen_port(runtime)) as charger:
                await csms.wait_for(lambda: "Available" in statuses(csms))
                await csms.wait_for(lambda: "Available" in statuses(csms, "GB104-OUT"))
                charger.write(b"\x68\x03\x00\x00\x00\x00\x00\x00")  # an APDU of length 3 (< 4)
                async with asyncio.timeout(10):
                    await charger.closed.wait()
            samples = await scrape(runtime)
            drops = value(samples, "ocpp_bridge_iec104_link_drops_total", reason="bad_frame")
            assert drops == 1.0
            await c104_charger.update(PLUG, True)
            await csms.wait_for(lambda: "Occupied" in statuses(csms, "GB104-OUT"))
            # and the dial-in station takes its charger back on a new connection
            async with dialled_in(listen_port(runtime)) as again:
                await again.wait_for(lambda: again.of_type(C_CI_NA_1) != [])
                again.update(PLUG, True)
                await csms.wait_for(lambda: "Occupied" in statuses(csms))
        assert csms.problems() == []


async def test_phantom_data_asdus_from_a_foreign_common_address_change_nothing_at_the_csms() -> (
    None
):
    async with running_csms() as csms, running_bridge(dial_in_config(csms)) as runtime:
        async with dialled_in(listen_port(runtime)) as charger:
            await csms.wait_for(lambda: "Available" in statuses(csms))
            await charger.wait_for(lambda: charger.of_type(C_CI_NA_1) != [])
            charger.update(PLUG, True, ca=5)
            charger.update(HOLSTERED, False, ca=5)
            charger.update(CHARGING, True, ca=5)
            charger.update(WORK_STATUS, 3.0, ca=5)
            charger.update(HOLSTERED, True)  # from CA 1, after them: a barrier, nothing changes
            charger.update(WORK_STATUS, 2.0)
            await asyncio.sleep(0.3)
            samples = await scrape(runtime)
            notices = value(samples, "ocpp_bridge_iec104_notices_total", kind="foreign-ca")
            assert notices == 4.0  # every one, though the log says it once a minute
            assert "Occupied" not in statuses(csms)
            assert payloads(csms, "TransactionEvent") == []
            # the same plug from CA 1 is applied: the phantom was refused for its address alone
            charger.update(PLUG, True)
            await csms.wait_for(lambda: "Occupied" in statuses(csms))
            assert statuses(csms) == ["Available", "Occupied"]
            assert payloads(csms, "TransactionEvent") == []
        assert csms.problems() == []


# --- the hand-over, at the adapter ---------------------------------------------------------------


async def test_dial_in_hand_over_reports_link_up_and_the_asdus_read_before_it() -> None:
    """Identification reads the charger's first ASDU; the link that takes the connection over reports
    LinkUp and that ASDU at once, without waiting for the charger's next bytes."""
    station = Iec104Station.model_validate(dial_in_station())
    table = load_table(station)
    loop = asyncio.get_running_loop()
    seen: list[LinkEvent] = []
    changed = asyncio.Event()

    def consumer(batch: list[LinkEvent]) -> None:
        seen.extend(batch)
        changed.set()

    log = structlog.get_logger("test")
    link = Iec104Link(
        STATION, Session104(session_settings(station, table), now=loop.time()),
        consumer=consumer, log=log,
    )  # fmt: skip
    listener = Iec104Listener("127.0.0.1:0", {CA: link}, log=log)
    running = asyncio.create_task(link.run())
    _, port = await listener.start()
    try:
        # a charger that answers STARTDT and the global GI with one point, then sends nothing more
        # (not even an S-frame: the bridge's start-up I-frames are well within t1)
        silent = WireCharger(answer=False, ack=False)
        silent.points = {}
        await silent.connect(port)
        try:
            await silent.wait_for(lambda: silent.received != [])
            silent.send(asdu(M_SP_NA_1, COT_INROGEN, CA, HOLSTERED, b"\x01"))
            async with asyncio.timeout(5):
                while not (LinkUp() in seen and any(isinstance(e, PointUpdate) for e in seen)):
                    changed.clear()
                    await changed.wait()
            assert seen[0] == LinkUp()
            assert seen[1] == PointUpdate(HOLSTERED, "M_SP_NA_1", True)
            assert link.is_up
        finally:
            await silent.close()
    finally:
        await listener.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
