"""/ready reports every station's state (issue 18 item 2): which stations are down and why, for each
kind (2.0.1 pass-through, translated 1.6J, IEC 104), in the JSON body; the status code is the bridge's
own readiness only, so one unplugged charger never gets a healthy bridge restarted.

The bridge runs for real between the `ocpp` package's chargers and CSMS and a c104 charger; /ready is
read over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import orjson
from ocpp.routing import on
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call, call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

from adapters.runtime import MAX_LISTED_STATIONS, Runtime
from tests.adapters.test_health import http_get
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import connected_charger, connected_charger16, now_iso, running_csms

BOOT = call.BootNotification(
    charging_station={"model": "Wallbox X", "vendor_name": "Acme"}, reason="PowerUp"
)
REFUSED = "R-201-REFUSED"  # the CSMS answers its handshake 401


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refuse_one(request: Request) -> int | None:
    return 401 if request.path.endswith("/" + REFUSED) else None


async def ready(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    assert runtime.health_address is not None
    answer = await http_get(runtime.health_address[1], "/ready")
    return answer.status, answer.json()


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def listed(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in body["stations"]["listed"]}


async def test_ready_names_the_stations_that_are_down_and_why_for_every_kind() -> None:
    async with running_csms(check_request=refuse_one) as csms, idle_charger() as charger104:
        stations: list[dict[str, Any]] = [
            {"id": "R-201", "protocol": "ocpp2.0.1"},
            {"id": "R-201-OFF", "protocol": "ocpp2.0.1"},
            {"id": REFUSED, "protocol": "ocpp2.0.1"},
            {"id": "R-16", "protocol": "ocpp1.6"},
            {"id": "R-16-OFF", "protocol": "ocpp1.6"},
            station_entry("R-104", charger104.port),
            station_entry("R-104-DOWN", closed_port()),
        ]
        config = bridge_config(csms.url, stations, bridge={"health": "127.0.0.1:0"})
        async with running_bridge(config) as bridge:
            async with (
                connected_charger(south_url(bridge), "R-201") as (charger201, _, _),
                connected_charger16(south_url(bridge), "R-16") as (charger16, _, _),
            ):
                assert (await charger201.call(BOOT)).status == "Accepted"
                boot16 = call16.BootNotification(
                    charge_point_vendor="Acme", charge_point_model="V16"
                )
                assert (await charger16.call(boot16)).status == "Accepted"
                # the refused pass-through charger is closed with 1013 ("try again later")
                async with connected_charger(south_url(bridge), REFUSED) as (_, connection, _):
                    await asyncio.wait_for(connection.wait_closed(), 10)
                    assert connection.close_code == 1013
                for name in ("R-104", "R-104-DOWN"):
                    north = bridge.translated_hosts[name].core.north
                    await until(lambda north=north: north.boot_status == "Accepted")  # type: ignore[misc]
                await until(lambda: bridge.iec104_links["R-104"].link.is_up)
                down104 = bridge.iec104_links["R-104-DOWN"].link
                await until(lambda: down104.last_drop is not None)

                status, body = await ready(bridge)
                # the bridge itself is ready: stations that are down do not make it 503
                assert status == 200 and body["ready"] is True
                report = body["stations"]
                assert (report["total"], report["up"], report["down"]) == (7, 3, 4)
                assert (report["charger_side_down"], report["csms_side_down"]) == (4, 3)
                assert report["more"] == 0
                down = listed(body)
                assert sorted(down) == sorted(["R-104-DOWN", REFUSED, "R-16-OFF", "R-201-OFF"])
                assert down["R-201-OFF"] == {
                    "id": "R-201-OFF",
                    "protocol": "ocpp2.0.1",
                    "charger": "charger not connected since the start",
                    "csms": "CSMS not connected (opened when the charger connects)",
                }
                assert down[REFUSED]["charger"].startswith("charger not connected (disconnected")
                assert down[REFUSED]["charger"].endswith(", close code 1013)")
                assert down[REFUSED]["csms"] == "CSMS not connected: CSMS answered HTTP 401"
                assert down["R-16-OFF"]["charger"] == "charger not connected since the start"
                assert down["R-16-OFF"]["csms"] == (
                    "CSMS not connected (opened once the charger has booted)"
                )
                assert down["R-104-DOWN"]["protocol"] == "iec104"
                assert down["R-104-DOWN"]["charger"].startswith("104 link not up after ")
                assert "connect call failed" in down["R-104-DOWN"]["charger"].lower()
                # the 104 station has its own CSMS connection, up and registered (its identity is
                # its table's)
                assert down["R-104-DOWN"]["csms"] is None

            # the 1.6 charger unplugged: its charger side is down, its CSMS side stays up
            await until(lambda: not {"R-16", "R-201"} & bridge.chargers_connected.keys())
            await until(lambda: "R-201" not in bridge._passthrough_north)
            status, body = await ready(bridge)
            assert status == 200
            r16 = listed(body)["R-16"]
            assert r16["charger"].startswith("charger not connected (disconnected at ")
            assert r16["csms"] is None
            # the pass-through station's CSMS connection went with its charger
            r201 = listed(body)["R-201"]
            assert r201["csms"] == "CSMS not connected (opened when the charger connects)"

            # the CSMS goes away: every CSMS side reports it, /ready still 200
            await csms.stop()
            await until(lambda: not bridge.translated_hosts["R-104"].core.north.online)
            status, body = await ready(bridge)
            assert status == 200
            assert listed(body)["R-104"]["charger"] is None
            assert listed(body)["R-104"]["csms"].startswith("CSMS not connected")
        # after stop: not ready (the bridge's own state), whatever the stations
        assert bridge.readiness()["south"] == "shutting down"


async def test_the_ready_body_is_bounded_at_10000_stations() -> None:
    stations = [{"id": f"CP-{n:05d}", "protocol": "ocpp2.0.1"} for n in range(10_000)]
    config = bridge_config("ws://127.0.0.1:9/ocpp", stations, bridge={"health": "127.0.0.1:0"})
    async with running_bridge(config) as bridge:
        status, body = await ready(bridge)
        assert status == 200
        report = body["stations"]
        assert (report["total"], report["up"], report["down"]) == (10_000, 0, 10_000)
        assert len(report["listed"]) == MAX_LISTED_STATIONS
        assert report["more"] == 10_000 - MAX_LISTED_STATIONS
        assert report["listed"][0]["id"] == "CP-00000"  # by id
        assert len(orjson.dumps(body)) < 20_000


class PendingCsms(ChargePoint201):
    """A CSMS (the `ocpp` package) that answers every BootNotification Pending."""

    @on("BootNotification")
    async def on_boot(self, **_: Any) -> Any:
        return call_result.BootNotification(current_time=now_iso(), interval=30, status="Pending")

    @on("StatusNotification")
    async def on_status(self, **_: Any) -> Any:
        return call_result.StatusNotification()


async def test_ready_says_when_the_csms_has_not_accepted_the_boot() -> None:
    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        with contextlib.suppress(Exception):
            await PendingCsms(connection.request.path.rsplit("/", 1)[-1], connection).start()

    async with (
        serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"]) as server,  # type: ignore[list-item]
        idle_charger() as charger104,
    ):
        port = next(iter(server.sockets)).getsockname()[1]
        config = bridge_config(
            f"ws://127.0.0.1:{port}/ocpp",
            [station_entry("P-104", charger104.port)],
            bridge={"health": "127.0.0.1:0"},
        )
        async with running_bridge(config) as bridge:
            north = bridge.translated_hosts["P-104"].core.north
            await until(lambda: north.boot_status == "Pending")
            await until(lambda: bridge.iec104_links["P-104"].link.is_up)
            status, body = await ready(bridge)
    assert status == 200
    assert listed(body)["P-104"] == {
        "id": "P-104",
        "protocol": "iec104",
        "charger": None,
        "csms": "boot not accepted (CSMS answered Pending)",
    }
