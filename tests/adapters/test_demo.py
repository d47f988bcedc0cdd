"""`ocpp-bridge demo --duration`: runs on loopback, exits 0 and prints a summary of what the CSMS saw.

Each kind of charger (1.6J, 2.0.1, IEC 104 dialled by the bridge, IEC 104 dialling in with a card on
the vendor example table) must have booted and completed a transaction within `--duration 5` (a
session under way at the deadline is completed first).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))


def test_demo_runs_a_session_through_the_bridge_and_summarises(tmp_path: Path) -> None:
    completed = subprocess.run(
        [EXECUTABLE, "demo", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,  # shipped data must be found from any working directory
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout
    assert "demo result: OK" in output
    for station, protocol in (
        ("DEMO-201", "ocpp2.0.1"),
        ("DEMO-16", "ocpp1.6"),
        ("DEMO-104", "iec104"),  # a c104 server per the shipped gb-dc-charger table
        ("DEMO-CARD", "iec104"),  # the simulator's outstation on example-dialin-card, dialling in
    ):
        summary = re.search(
            rf"summary {station} \({re.escape(protocol)}\): booted=True transactions"
            r" started=(\d+) ended=(\d+) energy=([\d.]+) Wh",
            output,
        )
        assert summary is not None, output
        started, ended, energy = int(summary[1]), int(summary[2]), float(summary[3])
        assert ended >= 1, station
        assert started >= ended
        assert energy > 0
    # The CSMS's GetVariables reached each station and came back (for 1.6: answered by the bridge).
    assert output.count("HeartbeatInterval=60") == 2
    # For 104 the bridge serves the device model: the CSMS set the meter interval and read it back.
    assert re.search(r"summary DEMO-104 \(iec104\): .* TxUpdatedInterval=1$", output, re.M), output
    # Every card session was Started and Ended once each with the card's idToken (the demo checks it
    # for `demo result: OK`; the count is of those sessions).
    card = re.search(
        r"summary DEMO-CARD \(iec104\): .* ended=(\d+) .* card sessions=(\d+) ", output
    )
    assert card is not None, output
    assert int(card[2]) == int(card[1]) >= 1
    # the header and the table fit 80 columns
    table = output[output.index("What the CSMS sees") : output.index("summary ")]
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "DEMO-CARD" in table


def test_demo_log_lines_go_above_the_live_table_at_its_level() -> None:
    """Issue 18 item 11: the demo honours its log level, and its log lines never spill into the live
    table: written while the table shows, a line goes through rich's stderr proxy (printed above the
    table by the console), not to the terminal behind rich's back."""
    import io
    import logging

    from rich.console import Console
    from rich.live import Live

    from adapters.cli.demo import configure_demo_logging
    from adapters.ops.logs import get_logger

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    try:
        configure_demo_logging("warning")
        log = get_logger().bind(station_id="DEMO-104")
        with Live("LIVE-TABLE", console=console, transient=True):
            log.info("demo.not_shown")
            log.warning("demo.shown_above", detail="x")
        output = screen.getvalue()
        assert "demo.shown_above" in output  # through the console, above the table
        assert "demo.not_shown" not in output
        assert '{"' not in output  # readable lines, not JSON
    finally:
        logging.getLogger().handlers.clear()


def test_the_demo_serves_the_status_page_at_the_url_it_prints(tmp_path: Path) -> None:
    """An operator watches the demo's stations in a browser: the URL printed at the start serves the
    status page (and /status.json) with the four stations while the demo runs."""
    process = subprocess.Popen(
        [EXECUTABLE, "demo", "--duration", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = None
        for _ in range(20):  # the header's lines come first
            line = process.stdout.readline()
            found = re.match(r"status +(http://127\.0\.0\.1:\d+)/status ", line)
            if found:
                url = found[1]
                break
        assert url is not None
        with urllib.request.urlopen(f"{url}/status.json", timeout=10) as answer:
            page = json.loads(answer.read())
        with urllib.request.urlopen(f"{url}/status", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/html")
            html = answer.read().decode()
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, out + err
    ids = {station["id"] for station in page["stations"]}
    assert ids == {"DEMO-201", "DEMO-16", "DEMO-104", "DEMO-CARD"}
    assert all(station_id in html for station_id in ids)
