"""The shipped Grafana dashboard and Prometheus alert rules (issue 21 item 3) name only series a running
bridge serves: every metric name in docs/grafana/ocpp-bridge.json and docs/prometheus/alerts.yml is
found in a scrape of a bridge with an OCPP 1.6J, an OCPP 2.0.1 and an IEC 104 station, after the 2.0.1
and 1.6J chargers booted through it (so the added-latency histogram the "added latency" panel and alert
read has counted messages both ways). `promtool check
rules` (Debian's `prometheus` package) passes; without promtool that check is skipped, except in CI
(`CI=true`), where `.ci/run` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from tests.adapters.test_health import http_get
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import connected_charger, connected_charger16, running_csms

DOCS = Path(__file__).resolve().parents[2] / "docs"
DASHBOARD = DOCS / "grafana" / "ocpp-bridge.json"
ALERTS = DOCS / "prometheus" / "alerts.yml"
_NAME = re.compile(r"\b((?:ocpp_bridge|process|python)_[a-z0-9_]+)\b")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    document = YAML(typ="safe").load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in panels)
    exprs = " ".join(dashboard_exprs())
    for series in (
        "ocpp_bridge_stations_connected",
        "ocpp_bridge_messages_total",
        "ocpp_bridge_outbox_depth",
        "ocpp_bridge_outbox_oldest_age_seconds",
        "ocpp_bridge_outbox_gave_up_total",
        "ocpp_bridge_iec104_links",
        "ocpp_bridge_iec104_link_drops_total",
        "ocpp_bridge_store_write_seconds_bucket",
        "ocpp_bridge_event_loop_lag_seconds_bucket",
        "ocpp_bridge_added_latency_seconds_bucket",
        "process_resident_memory_bytes",
    ):
        assert series in exprs
    titles = {panel["title"]: panel for panel in panels}
    added = titles["Added latency per forwarded message (p50, p95, p99) by direction"]
    assert [target["expr"].split(",")[0] for target in added["targets"]] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert all("ocpp_bridge_added_latency_seconds_bucket" in t["expr"] for t in added["targets"])
    assert (
        "ocpp_bridge_event_loop_lag_seconds_bucket"
        in titles["Event loop lag (p50, p99)"]["targets"][0]["expr"]
    )


def test_the_alert_rules_cover_what_goes_wrong() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in (
        "OcppBridgeCsmsUnreachable",
        "OcppBridgeCsmsConnectFailures",
        "OcppBridgeOutboxGrowing",
        "OcppBridgeOutboxStale",
        "OcppBridgeTransactionEventsGivenUp",
        "OcppBridgeIec104LinkDown",
        "OcppBridgeEventLoopLag",
        "OcppBridgeAddedLatencyHigh",
        "OcppBridgeStoreSlow",
    ):
        assert name in rules
        assert rules[name]["labels"]["severity"] in ("critical", "warning", "info")
        assert rules[name]["annotations"]["summary"]


async def test_every_metric_named_exists_in_a_scrape_of_a_running_bridge() -> None:
    async with running_csms() as csms, idle_charger() as charger104:
        config = bridge_config(
            csms.url,
            [
                {"id": "D-201", "protocol": "ocpp2.0.1"},
                {"id": "D-16", "protocol": "ocpp1.6"},
                station_entry("D-104", charger104.port),
            ],
            bridge={"health": "127.0.0.1:0"},
        )
        async with running_bridge(config) as bridge:
            assert bridge.health_address is not None
            url = south_url(bridge)
            async with (
                connected_charger(url, "D-201") as (charger, _, _),
                connected_charger16(url, "D-16") as (charger16, _, _),
            ):
                boot = await charger.call(
                    call.BootNotification(
                        charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
                    )
                )
                assert boot.status == "Accepted"
                boot16 = await charger16.call(
                    call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
                )
                assert boot16.status == "Accepted"
                answer = await http_get(bridge.health_address[1], "/metrics")
    scraped: set[str] = set()
    for family in text_string_to_metric_families(answer.body.decode()):
        scraped.add(family.name)
        if family.type == "counter":
            scraped.add(family.name + "_total")
        if family.type == "histogram":
            scraped.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        scraped.update(sample.name for sample in family.samples)
    named = {
        name
        for expr in dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
        for name in _NAME.findall(expr)
    }
    assert len(named) >= 15
    assert sorted(named - scraped) == []
    # the added-latency panel and alert have data: the boots were timed both ways
    counts = {
        (sample.labels["direction"], sample.labels["protocol"]): sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        if family.name == "ocpp_bridge_added_latency_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert counts[("charger_to_csms", "ocpp2.0.1")] >= 1  # the BootNotification
    assert counts[("csms_to_charger", "ocpp2.0.1")] >= 1  # its answer
    assert counts[("charger_to_csms", "ocpp1.6")] >= 1  # translated to 2.0.1


def test_promtool_checks_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout
