"""Issue 18 item 9: the metrics an operator needs, and `ocpp-bridge --version`."""

from __future__ import annotations

import importlib.metadata
import socket

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.config import BridgeConfig
from adapters.ocpp.north import CsmsConnector, CsmsUnavailable, Pacer
from adapters.ops.metrics import BridgeMetrics
from bridge.effects import Side
from tests.adapters.test_health import parse_metrics, value

VERSION = importlib.metadata.version("ocpp-bridge")


def test_version_option() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ocpp-bridge {VERSION}\n"


def test_process_metrics_and_build_info() -> None:
    samples = parse_metrics(BridgeMetrics().exposition().decode())
    names = {name for name, _ in samples}
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
    ):
        assert name in names, name
    builds = [labels for name, labels in samples if name == "ocpp_bridge_build_info"]
    assert len(builds) == 1
    assert dict(builds[0])["version"] == VERSION


def test_messages_the_outbox_gave_up_on_are_counted() -> None:
    metrics = BridgeMetrics()
    metrics.diagnostic(Side.NORTH, "outbox-gave-up", {"outbox_seq": 1, "transaction_id": "t"})
    metrics.diagnostic(Side.NORTH, "outbox-gave-up", {"outbox_seq": 2})
    metrics.diagnostic(Side.NORTH, "status-gave-up", {})
    samples = parse_metrics(metrics.exposition().decode())
    name = "ocpp_bridge_outbox_gave_up_total"
    assert value(samples, name, message="TransactionEvent") == 1
    assert value(samples, name, message="StatusNotification") == 1
    assert value(samples, name, message="other") == 1


async def test_csms_connection_failures_are_counted_by_reason() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = BridgeConfig.model_validate({"csms": {"url": f"ws://127.0.0.1:{port}/ocpp"}})
    metrics = BridgeMetrics()
    connector = CsmsConnector(config.csms, config.csms_password_for, None, Pacer(100.0, 10))
    connector.on_failure = metrics.csms_connect_failed
    try:
        with pytest.raises(CsmsUnavailable) as caught:
            await connector.connect("CP1")
    finally:
        connector.keepalive.close()
    assert caught.value.kind == "refused"
    samples = parse_metrics(metrics.exposition().decode())
    assert value(samples, "ocpp_bridge_csms_connect_failures_total", reason="refused") == 1
    assert value(samples, "ocpp_bridge_csms_connect_failures_total", reason="timeout") == 0


def test_iec104_links_that_are_up_are_connected_stations() -> None:
    metrics = BridgeMetrics(protocols={"iec104"})
    link = metrics.iec104_link("down")

    def connected() -> float | None:
        samples = parse_metrics(metrics.exposition().decode())
        return value(samples, "ocpp_bridge_stations_connected", side="south", protocol="iec104")

    assert connected() == 0
    link.set("up")
    assert connected() == 1
    link.set("down")
    assert connected() == 0
    link.set("up")
    link.close()
    assert connected() == 0


def test_lease_counters_are_exposed_with_their_documented_names() -> None:
    """docs/operating.md names `ocpp_bridge_fencing_refusals_total` and the other lease counters
    (issue 20): a scrape has them, with the keeper's figures (held, takeovers, refusals, lost)."""
    metrics = BridgeMetrics()
    metrics.set_leases_source(lambda: (4, 3, 2, 1))
    samples = parse_metrics(metrics.exposition().decode())
    figures = {
        name: value(samples, name)
        for name in (
            "ocpp_bridge_leases_held",
            "ocpp_bridge_lease_takeovers_total",
            "ocpp_bridge_fencing_refusals_total",
            "ocpp_bridge_leases_lost_total",
        )
    }
    assert figures == {
        "ocpp_bridge_leases_held": 4,
        "ocpp_bridge_lease_takeovers_total": 3,
        "ocpp_bridge_fencing_refusals_total": 2,
        "ocpp_bridge_leases_lost_total": 1,
    }
