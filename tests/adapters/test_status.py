"""The operator's status page (issue 21): /, /status (HTML) and /status.json on the health address.

End to end: the real bridge with a 2.0.1 pass-through charger, a 1.6J charger and an IEC 104 charger
(the bridge dials it) between the `ocpp` CSMS, the page read over real HTTP; then the pieces: off by
default, 10,000 stations paged and filtered, escaping, query parsing, the energy register reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call

from adapters.config import BridgeConfig
from adapters.ops.status import MAX_LIMIT, StatusQuery, register_wh, render_html
from adapters.runtime import Runtime
from tests.adapters.test_health import http_get
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import connected_charger, connected_charger16, now_iso, running_csms

TOKEN = "04AB12CD34EF56"  # an idToken that must never appear in clear
TAG16 = "DEADBEEF01"


async def status_json(runtime: Runtime, query: str = "") -> dict[str, Any]:
    assert runtime.health_address is not None
    answer = await http_get(runtime.health_address[1], "/status.json" + query)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    result: dict[str, Any] = answer.json()
    return result


def row(snapshot: dict[str, Any], station_id: str) -> dict[str, Any]:
    (found,) = [r for r in snapshot["stations"] if r["id"] == station_id]
    return found


async def until(runtime: Runtime, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll /status.json until `check` holds (bounded: 10 s)."""
    async with asyncio.timeout(10):
        while True:
            snapshot = await status_json(runtime)
            if check(snapshot):
                return snapshot
            await asyncio.sleep(0.05)


def energy(wh: float, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    return [
        {
            "timestamp": now_iso(),
            "sampled_value": [
                {"value": wh, "measurand": "Energy.Active.Import.Register", "context": context}
            ],
        }
    ]


async def test_the_page_shows_each_kind_of_station_its_transaction_and_a_link_going_down() -> None:
    async with running_csms() as csms, contextlib.AsyncExitStack() as stack:
        charger104 = await stack.enter_async_context(idle_charger())
        config = bridge_config(
            csms.url,
            [
                {"id": "ST-201", "protocol": "ocpp2.0.1"},
                {"id": "ST-16", "protocol": "ocpp1.6"},
                station_entry("ST-104", charger104.port),
            ],
            bridge={"health": "127.0.0.1:0", "status_page": True},
        )
        bridge = await stack.enter_async_context(running_bridge(config))
        url = south_url(bridge)
        charger, _, _ = await stack.enter_async_context(connected_charger(url, "ST-201"))
        boot = await charger.call(
            call.BootNotification(
                charging_station={"model": "X", "vendor_name": "Acme"}, reason="PowerUp"
            )
        )
        assert boot.status == "Accepted"
        await charger.call(
            call.StatusNotification(
                timestamp=now_iso(), connector_status="Occupied", evse_id=1, connector_id=1
            )
        )
        started = now_iso()
        for seq_no, (event, wh) in enumerate((("Started", 1000.0), ("Updated", 1750.0))):
            await charger.call(
                call.TransactionEvent(
                    event_type=event,
                    timestamp=started if event == "Started" else now_iso(),
                    trigger_reason="Authorized",
                    seq_no=seq_no,
                    transaction_info={"transaction_id": "TX-201-1"},
                    id_token={"id_token": TOKEN, "type": "ISO14443"},
                    evse={"id": 1, "connector_id": 1},
                    meter_value=energy(
                        wh, "Transaction.Begin" if seq_no == 0 else "Sample.Periodic"
                    ),
                )
            )
        charger16, _, _ = await stack.enter_async_context(connected_charger16(url, "ST-16"))
        await charger16.call(
            call16.BootNotification(charge_point_model="M", charge_point_vendor="V")
        )
        start16 = await charger16.call(
            call16.StartTransaction(
                connector_id=1, id_tag=TAG16, meter_start=5000, timestamp=now_iso()
            )
        )

        snapshot = await until(
            bridge,
            lambda s: (
                row(s, "ST-104")["charger"]["connected"]
                and row(s, "ST-16")["csms"]["boot"] == "Accepted"
                and len(row(s, "ST-16")["transactions"]) == 1
            ),
        )
        bridge_line = snapshot["bridge"]
        assert bridge_line["stations"] == 3
        assert bridge_line["chargers_connected"] == 3
        assert bridge_line["csms_connected"] == 3
        assert bridge_line["store"] == {"path": ":memory:", "open": True}
        assert bridge_line["version"]
        st201 = row(snapshot, "ST-201")
        assert st201["protocol"] == "ocpp2.0.1"
        assert st201["charger"] == {"connected": True}
        assert st201["csms"] == {"connected": True, "boot": "Accepted"}
        assert st201["connectors"] == [{"evse": 1, "connector": 1, "status": "Occupied"}]
        (transaction,) = st201["transactions"]
        assert transaction == {
            "id": "TX-201-1",
            "evse": 1,
            "started": started,
            "energy_wh": 750.0,
            "id_token": "04****56",
        }
        assert st201["frames"]["from_charger"]["what"] == "TransactionEvent"
        assert st201["frames"]["to_charger"]["what"] == "CALLRESULT"
        assert st201["frames"]["to_csms"]["what"] == "TransactionEvent"
        assert st201["outbox"] == {"depth": 0, "oldest_age_s": None}

        st16 = row(snapshot, "ST-16")
        (transaction16,) = st16["transactions"]
        assert transaction16["evse"] == 1
        assert transaction16["id_token"] == "DE****01"
        assert st16["frames"]["from_charger"]["what"] in ("StartTransaction", "CALLRESULT")
        st104 = row(snapshot, "ST-104")
        assert st104["charger"]["link"] == "up"
        assert st104["csms"]["connected"] is True
        assert st104["frames"]["from_charger"] is not None

        # The page: every station, no idToken in clear, reloading itself.
        assert bridge.health_address is not None
        port = bridge.health_address[1]
        page = await http_get(port, "/")
        assert page.status == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        text = page.body.decode()
        assert '<meta http-equiv="refresh"' in text
        for station_id in ("ST-201", "ST-16", "ST-104"):
            assert f'id="station-{station_id}"' in text
        assert "TX-201-1" in text and "04****56" in text
        assert TOKEN not in text and TAG16 not in text
        assert (await http_get(port, "/status")).body.decode().count("<tr id=") == 3
        assert TOKEN not in (await http_get(port, "/status.json")).body.decode()

        # The 1.6 transaction ends: it leaves the open ones and the CSMS acknowledges its end.
        await charger16.call(
            call16.StopTransaction(
                meter_stop=6500, timestamp=now_iso(), transaction_id=start16.transaction_id
            )
        )
        snapshot = await until(
            bridge,
            lambda s: (
                not row(s, "ST-16")["transactions"]
                and (row(s, "ST-16")["last_transaction"] or {}).get("acknowledged") is True
            ),
        )

        # The 104 charger goes away: its link is down, with the reason.
        await charger104.stop()
        snapshot = await until(bridge, lambda s: not row(s, "ST-104")["charger"]["connected"])
        st104 = row(snapshot, "ST-104")
        assert st104["charger"]["link"] == "down"
        assert st104["charger"]["last_drop"]
        assert snapshot["bridge"]["chargers_connected"] == 2
        problems = await status_json(bridge, "?problems=1")
        assert [r["id"] for r in problems["stations"]] == ["ST-104"]
        assert "link down" in (await http_get(port, "/?problems=1")).body.decode()


async def test_the_page_is_off_unless_asked_for() -> None:
    config = BridgeConfig.model_validate(
        {
            "bridge": {"store": ":memory:", "health": "127.0.0.1:0"},
            "csms": {"url": "ws://127.0.0.1:9/ocpp"},
            "south": {"listen": "127.0.0.1:0"},
            "stations": [{"id": "CP-1", "protocol": "ocpp2.0.1"}],
        }
    )
    assert config.bridge.status_page is False
    async with running_bridge(config) as bridge:
        assert bridge.health_address is not None
        port = bridge.health_address[1]
        for path in ("/", "/status", "/status.json"):
            assert (await http_get(port, path)).status == 404
        assert (await http_get(port, "/health")).status == 200
        assert bridge.activities == {}


async def test_ten_thousand_stations_are_paged_and_filtered() -> None:
    stations = [{"id": f"CP-{n:05d}", "protocol": "ocpp2.0.1"} for n in range(10_000)]
    config = bridge_config(
        "ws://127.0.0.1:9/ocpp", stations, bridge={"health": "127.0.0.1:0", "status_page": True}
    )
    async with running_bridge(config) as bridge:
        first = await status_json(bridge)
        assert first["bridge"]["stations"] == 10_000
        assert first["page"] == {"matching": 10_000, "offset": 0, "limit": 50, "shown": 50}
        assert [r["id"] for r in first["stations"]][:2] == ["CP-00000", "CP-00001"]
        last = await status_json(bridge, "?page=200")
        assert [r["id"] for r in last["stations"]][-1] == "CP-09999"
        one = await status_json(bridge, "?q=cp-0999")
        assert [r["id"] for r in one["stations"]] == [f"CP-0999{n}" for n in range(10)]
        biggest = await status_json(bridge, "?limit=100000&problems=1")
        assert biggest["page"]["shown"] == MAX_LIMIT  # no charger connected: all have a problem
        assert biggest["page"]["matching"] == 10_000
        assert bridge.health_address is not None
        page = (await http_get(bridge.health_address[1], "/?page=3&q=CP")).body.decode()
        assert page.count("<tr id=") == 50
        assert "page 3 of 200" in page
        assert 'href="?q=CP&amp;page=4"' in page and 'href="?q=CP&amp;page=2"' in page


def test_every_value_on_the_page_is_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    snapshot = {
        "bridge": {
            "version": hostile,
            "started_at": None,
            "uptime_s": 5.0,
            "store": {"path": hostile, "open": True},
            "event_loop_lag_s": 0.002,
            "stations": 1,
            "chargers_connected": 0,
            "csms_connected": 0,
            "outbox_depth": 2,
            "outbox_oldest_age_s": 61.0,
            "ready": True,
        },
        "query": {"q": hostile, "problems": False},
        "page": {"matching": 1, "offset": 0, "limit": 50, "shown": 1},
        "stations": [
            {
                "id": hostile,
                "protocol": "iec104",
                "charger": {
                    "connected": False,
                    "link": "down",
                    "dial": "out",
                    "last_drop": hostile,
                    "problem": hostile,
                },
                "csms": {"connected": False, "boot": hostile},
                "connectors": [{"evse": 1, "connector": 1, "status": hostile}],
                "transactions": [
                    {
                        "id": hostile,
                        "evse": 1,
                        "started": hostile,
                        "energy_wh": 10.0,
                        "id_token": hostile,
                    }
                ],
                "last_transaction": {"id": hostile, "ended_at": hostile, "acknowledged": False},
                "outbox": {"depth": 2, "oldest_age_s": 61.0},
                "frames": {"from_charger": {"what": hostile, "at": "2024-01-01T00:00:00Z"}},
            }
        ],
    }
    page = render_html(snapshot).decode()
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "2 queued</span>, oldest 61 s" in page


def test_query_strings_are_read_within_bounds() -> None:
    assert StatusQuery.parse("") == StatusQuery()
    assert StatusQuery.parse("q=GB&problems=1&page=3&limit=20") == StatusQuery(
        q="GB", problems=True, offset=40, limit=20
    )
    assert StatusQuery.parse("limit=0&page=-4") == StatusQuery(limit=1, offset=0)
    assert StatusQuery.parse("limit=abc&page=x&problems=0").limit == 50
    assert StatusQuery.parse(f"limit={10**9}").limit == MAX_LIMIT
    assert len(StatusQuery.parse("q=" + "x" * 5000).q) == 200


def test_the_energy_register_is_read_in_wh() -> None:
    def sample(value: Any, **extra: Any) -> list[dict[str, Any]]:
        return [{"sampledValue": [{"value": value, **extra}]}]

    assert register_wh(sample(12.5)) == 12.5  # the default measurand is the energy register
    assert register_wh(sample(2, unitOfMeasure={"unit": "kWh"})) == 2000.0
    assert register_wh(sample(3, unitOfMeasure={"multiplier": 3})) == 3000.0
    assert register_wh(sample(3, phase="L1")) is None
    assert register_wh(sample(3, measurand="Power.Active.Import")) is None
    assert register_wh(sample(True)) is None
    assert register_wh("junk") is None
    assert register_wh([{"sampledValue": "junk"}, 7]) is None
