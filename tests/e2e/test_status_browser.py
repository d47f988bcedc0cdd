"""The status page in a real browser (issue 21 item 2): headless Chromium (Debian's `chromium`) loads the
page of a running bridge with the three kinds of charger the demo runs (OCPP 1.6J translated, OCPP 2.0.1
passed through, IEC 104 dialled by the bridge) and the test reads what a person sees: the stations, a
transaction appearing, a 104 link going down. The last screenshot is kept as a test artifact,
`test-artifacts/status-page.png` (the folder `OCPP_BRIDGE_TEST_ARTIFACTS` names, if set).

Without Chromium the test is skipped on a developer's machine and fails in CI (`CI=true`): `.ci/run`
installs it when it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call

from adapters.runtime import Runtime
from tests.adapters.test_status import energy, row, until
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import connected_charger, connected_charger16, now_iso, running_csms

ARTIFACTS = Path(
    os.environ.get(
        "OCPP_BRIDGE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
    )
)
TOKEN = "04AB12CD34EF56"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        self._executable = executable
        self._profile = profile

    async def _run(self, *args: str) -> bytes:
        process = await asyncio.create_subprocess_exec(
            self._executable,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={self._profile}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(60):
                out, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0
        return out

    async def text(self, url: str) -> str:
        """The page as the browser built it, reduced to its visible text (tags out, entities read)."""
        dom = (await self._run("--dump-dom", url)).decode()
        return html.unescape(re.sub(r"<[^>]+>", " ", dom.split("<body", 1)[-1]))

    async def row_text(self, url: str, station_id: str) -> str:
        dom = (await self._run("--dump-dom", url)).decode()
        match = re.search(rf'<tr id="station-{re.escape(station_id)}">(.*?)</tr>', dom, re.S)
        assert match is not None, dom
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match[1])).split())

    async def screenshot(self, url: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(f"--screenshot={path}", "--window-size=1500,700", url)
        head = await asyncio.to_thread(path.read_bytes)
        assert head[:8] == b"\x89PNG\r\n\x1a\n"


async def seen(browser: Browser, url: str, station_id: str, check: Callable[[str], bool]) -> str:
    """The row the browser shows once `check` holds for it (bounded: a few page loads)."""
    text = ""
    for _ in range(10):
        text = await browser.row_text(url, station_id)
        if check(text):
            return text
        await asyncio.sleep(0.3)
    raise AssertionError(f"{station_id}: {text}")


async def test_a_person_sees_the_stations_a_transaction_and_a_link_going_down(
    tmp_path: Path,
) -> None:
    browser = Browser(chromium(), tmp_path / "profile")
    async with running_csms() as csms, contextlib.AsyncExitStack() as stack:
        charger104 = await stack.enter_async_context(idle_charger())
        config = bridge_config(
            csms.url,
            [
                {"id": "DEMO-201", "protocol": "ocpp2.0.1"},
                {"id": "DEMO-16", "protocol": "ocpp1.6"},
                station_entry("DEMO-104", charger104.port),
            ],
            bridge={"health": "127.0.0.1:0", "status_page": True},
        )
        bridge: Runtime = await stack.enter_async_context(running_bridge(config))
        assert bridge.health_address is not None
        page = f"http://127.0.0.1:{bridge.health_address[1]}/"
        charger, _, _ = await stack.enter_async_context(
            connected_charger(south_url(bridge), "DEMO-201")
        )
        await charger.call(
            call.BootNotification(
                charging_station={"model": "Wallbox", "vendor_name": "Acme"}, reason="PowerUp"
            )
        )
        charger16, _, _ = await stack.enter_async_context(
            connected_charger16(south_url(bridge), "DEMO-16")
        )
        await charger16.call(
            call16.BootNotification(charge_point_model="M", charge_point_vendor="V")
        )
        await until(
            bridge,
            lambda s: (
                row(s, "DEMO-104")["charger"]["connected"]
                and row(s, "DEMO-16")["csms"]["boot"] == "Accepted"
            ),
        )

        # The stations, each with both sides connected.
        text = await browser.text(page)
        assert "ocpp-bridge status" in text and "3 stations" in text
        for station_id, protocol in (
            ("DEMO-201", "ocpp2.0.1"),
            ("DEMO-16", "ocpp1.6"),
            ("DEMO-104", "iec104"),
        ):
            shown = await browser.row_text(page, station_id)
            assert shown.startswith(f"{station_id} {protocol} ")
            assert "boot: Accepted" in shown
        assert "link up" in await browser.row_text(page, "DEMO-104")

        # A transaction appears: its id, its energy so far, the idToken masked.
        await charger.call(
            call.TransactionEvent(
                event_type="Started",
                timestamp=now_iso(),
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "TX-SEEN-1"},
                id_token={"id_token": TOKEN, "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1},
                meter_value=energy(20_000.0, "Transaction.Begin"),
            )
        )
        await charger.call(
            call.TransactionEvent(
                event_type="Updated",
                timestamp=now_iso(),
                trigger_reason="MeterValuePeriodic",
                seq_no=1,
                transaction_info={"transaction_id": "TX-SEEN-1"},
                meter_value=energy(21_250.0),
            )
        )
        shown = await seen(browser, page, "DEMO-201", lambda t: "TX-SEEN-1" in t)
        assert "1.250 kWh" in shown and "04****56" in shown
        assert TOKEN not in await browser.text(page)
        await charger16.call(
            call16.StartTransaction(
                connector_id=1, id_tag="DEADBEEF01", meter_start=1000, timestamp=now_iso()
            )
        )
        await seen(browser, page, "DEMO-16", lambda t: "DE****01" in t)

        # The 104 charger goes away: the page says its link is down, and why.
        await charger104.stop()
        await until(bridge, lambda s: not row(s, "DEMO-104")["charger"]["connected"])
        shown = await seen(browser, page, "DEMO-104", lambda t: "link down" in t)
        assert "last drop:" in shown
        await browser.screenshot(page, ARTIFACTS / "status-page.png")
