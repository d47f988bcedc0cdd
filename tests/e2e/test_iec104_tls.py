"""IEC 104 over TLS (IEC 62351-3 style), both directions, end to end on loopback.

Certificates come from trustme (a throw-away CA, a certificate for 127.0.0.1). The charger is the
byte-spelled `WireCharger` of tests/e2e/test_iec104_dial_in.py, behind an asyncio TLS server (dial-out)
or as a TLS client (dial-in); the CSMS is the `ocpp` package. TLS 1.2 is the floor both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trustme

from adapters.config import SouthSection
from adapters.iec104.listener import Iec104Listener
from adapters.tls import iec104_server_context
from tests.adapters.test_health import scrape, value
from tests.e2e.conftest import bridge_config, running_bridge
from tests.e2e.test_iec104_dial_in import (
    C_CI_NA_1,
    STARTDT_ACT,
    STATION,
    WireCharger,
    dial_in_config,
    listen_port,
    statuses,
)
from tests.peers import Csms, running_csms


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki104")
    ca = trustme.CA(organization_name="ocpp-bridge 104 tests")
    server = ca.issue_cert("127.0.0.1")
    files = {
        "ca": folder / "ca.pem",
        "cert": folder / "charger.pem",
        "key": folder / "charger.key",
        "other_ca": folder / "other-ca.pem",
    }
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["cert"])
    server.private_key_pem.write_to_path(files["key"])
    trustme.CA().cert_pem.write_to_path(files["other_ca"])
    return files


def server_context(pki: dict[str, Path], *, old: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    if old:
        too_old(context)
    return context


def client_context(pki: dict[str, Path], *, old: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    if old:
        too_old(context)
    return context


def too_old(context: ssl.SSLContext) -> None:
    """TLS 1.1 at most (and the ciphers it needs allowed), so only the bridge's floor refuses it."""
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # the old versions are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1


class TlsCharger:
    """A 104 charger's TLS server on 127.0.0.1, port 0: each connection is served by a WireCharger."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.chargers: list[WireCharger] = []
        self.tls_versions: list[str | None] = []
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        self.tls_versions.append(ssl_object.version() if ssl_object is not None else None)
        charger = WireCharger()
        charger.serve(reader, writer)
        self.chargers.append(charger)
        self.changed.set()

    async def wait_for_charger(self, timeout: float = 10.0) -> WireCharger:
        async with asyncio.timeout(timeout):
            while not self.chargers:
                self.changed.clear()
                await self.changed.wait()
        return self.chargers[0]


@contextlib.asynccontextmanager
async def tls_charger(context: ssl.SSLContext) -> AsyncIterator[TlsCharger]:
    charger = TlsCharger(context)
    charger.server = await asyncio.start_server(charger._accepted, "127.0.0.1", 0, ssl=context)
    charger.port = charger.server.sockets[0].getsockname()[1]
    try:
        yield charger
    finally:
        charger.server.close()
        for wire in charger.chargers:
            await wire.close()
        await charger.server.wait_closed()


def dial_out_station(port: int, ca_file: Path) -> dict[str, Any]:
    return {
        "id": STATION,
        "protocol": "iec104",
        "host": "127.0.0.1",
        "port": port,
        "tls": True,
        "ca_file": str(ca_file),
        "connectors": 1,
        "mapping": "gb-dc-charger",
    }


def dial_out_config(csms: Csms, port: int, ca_file: Path) -> Any:
    return bridge_config(
        csms.url, [dial_out_station(port, ca_file)], bridge={"health": "127.0.0.1:0"}
    )


async def wait_drops(runtime: Any, reason: str, timeout: float = 10.0) -> float:
    async with asyncio.timeout(timeout):
        while True:
            drops = value(
                await scrape(runtime), "ocpp_bridge_iec104_link_drops_total", reason=reason
            )
            if drops:
                return drops
            await asyncio.sleep(0.05)


# --- dial-out -------------------------------------------------------------------------------------


async def test_b01_dial_out_over_tls_verifies_the_chargers_certificate_and_boots(
    pki: dict[str, Path],
) -> None:
    async with (
        running_csms() as csms,
        tls_charger(server_context(pki)) as server,
        running_bridge(dial_out_config(csms, server.port, pki["ca"])),
    ):
        charger = await server.wait_for_charger()
        assert server.tls_versions[0] in ("TLSv1.2", "TLSv1.3")
        await csms.wait_for(lambda: "Available" in statuses(csms))
        assert charger.u_received[0] == STARTDT_ACT
        await charger.wait_for(lambda: charger.of_type(C_CI_NA_1) != [])
        assert bytes.fromhex("64010600010000000014") in charger.received  # GI to CA 1
        assert csms.problems() == []


async def test_dial_out_over_tls_refuses_a_certificate_of_another_ca(pki: dict[str, Path]) -> None:
    async with (
        running_csms() as csms,
        tls_charger(server_context(pki)) as server,
        running_bridge(dial_out_config(csms, server.port, pki["other_ca"])) as runtime,
    ):
        assert await wait_drops(runtime, "connection_error") >= 1
        assert server.chargers == []  # no handshake completed
        assert "Available" not in statuses(csms)


async def test_dial_out_refuses_a_charger_offering_less_than_tls_1_2(pki: dict[str, Path]) -> None:
    async with (
        running_csms() as csms,
        tls_charger(server_context(pki, old=True)) as server,
        running_bridge(dial_out_config(csms, server.port, pki["ca"])) as runtime,
    ):
        assert await wait_drops(runtime, "connection_error") >= 1
        assert server.chargers == []
        assert "Available" not in statuses(csms)


# --- dial-in ---------------------------------------------------------------------------------------


def tls_listen_config(csms: Csms, pki: dict[str, Path]) -> Any:
    return dial_in_config(csms, iec104_cert_file=str(pki["cert"]), iec104_key_file=str(pki["key"]))


async def test_b01_dial_in_over_tls_to_the_listeners_certificate(pki: dict[str, Path]) -> None:
    async with (
        running_csms() as csms,
        running_bridge(tls_listen_config(csms, pki)) as runtime,
    ):
        charger = WireCharger()
        await charger.connect(listen_port(runtime), tls=client_context(pki))
        try:
            assert charger._writer is not None
            ssl_object = charger._writer.get_extra_info("ssl_object")
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            await csms.wait_for(lambda: "Available" in statuses(csms))
            assert charger.received[0] == bytes.fromhex("64010600ffff00000014")
        finally:
            await charger.close()
        assert csms.problems() == []


async def test_dial_in_refuses_a_charger_offering_less_than_tls_1_2(pki: dict[str, Path]) -> None:
    async with (
        running_csms() as csms,
        running_bridge(tls_listen_config(csms, pki)) as runtime,
    ):
        port = listen_port(runtime)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            async with asyncio.timeout(10):
                await WireCharger().connect(port, tls=client_context(pki, old=True))
        # plain TCP is no way around it either: a 104 frame is not a TLS handshake
        plain = WireCharger()
        await plain.connect(port)
        try:
            plain.write(bytes.fromhex("680443000000"))  # TESTFR act
            async with asyncio.timeout(10):
                await plain.closed.wait()
            assert plain.received == []
        finally:
            await plain.close()
        # a TLS 1.2 charger is served
        good = WireCharger()
        await good.connect(port, tls=client_context(pki))
        try:
            await csms.wait_for(lambda: "Available" in statuses(csms))
        finally:
            await good.close()


async def test_dial_in_a_tls_handshake_that_never_starts_is_closed_within_the_listeners_timeout(
    pki: dict[str, Path],
) -> None:
    """Identification's timeout covers the TLS handshake (not asyncio's own 60 s on top of it)."""
    south = SouthSection(iec104_cert_file=pki["cert"], iec104_key_file=pki["key"])
    log = structlog.get_logger("test")
    listener = Iec104Listener(
        "127.0.0.1:0", {}, log=log, ssl_context=iec104_server_context(south), timeout=0.5
    )
    _, port = await listener.start()
    try:
        silent = WireCharger()
        await silent.connect(port)  # plain TCP, says nothing: no ClientHello ever
        try:
            async with asyncio.timeout(5):
                await silent.closed.wait()
        finally:
            await silent.close()
    finally:
        await listener.close()
