"""`ocpp-bridge mappings replay`: recorded 104 point changes → the 2.0.1 frames a CSMS would get."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind, Violation
from tests.peers import FrameOracle

ROOT = Path(__file__).resolve().parents[2]
DC = ROOT / "mappings" / "gb-dc-charger.yaml"
SESSION = ROOT / "mappings" / "examples" / "gb-dc-session.jsonl"
FRAME_LINE = re.compile(r"^\+(?P<seconds>\d+\.\d{3})s (?P<frame>\[.*\])$")

runner = CliRunner()


def frames(stdout: str) -> list[tuple[float, list[Any]]]:
    found = []
    for line in stdout.splitlines():
        match = FRAME_LINE.match(line)
        assert match, f"not a frame line: {line!r}"
        found.append((float(match["seconds"]), json.loads(match["frame"])))
    return found


def test_replay_of_the_example_dc_session() -> None:
    result = runner.invoke(app, ["mappings", "replay", str(DC), str(SESSION)])
    assert result.exit_code == 0, result.output
    sent = frames(result.stdout)
    oracle = FrameOracle()  # an independent check of every request with the jsonschema package
    for _, frame in sent:
        if frame[0] == 2:
            oracle.receive(json.dumps(frame))
    assert oracle.problems == []
    calls = [frame for _, frame in sent if frame[0] == 2]
    assert calls[0][2] == "BootNotification"
    events = [frame[3] for frame in calls if frame[2] == "TransactionEvent"]
    kinds = [(e["eventType"], e["triggerReason"]) for e in events]
    assert kinds[0] == ("Started", "RemoteStart")
    assert kinds[-1] == ("Ended", "RemoteStop")
    assert ("Updated", "MeterValuePeriodic") in kinds
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    begin = events[0]["meterValue"][0]["sampledValue"][0]
    end = events[-1]["meterValue"][0]["sampledValue"][0]
    assert (begin["context"], begin["value"]) == ("Transaction.Begin", 1_234_560)
    assert (end["context"], end["value"]) == ("Transaction.End", 1_241_120)
    statuses = [frame[3]["connectorStatus"] for frame in calls if frame[2] == "StatusNotification"]
    assert statuses == ["Available", "Occupied", "Available"]
    answers = [frame for _, frame in sent if frame[0] == 3]
    assert [a[2]["status"] for a in answers] == ["Accepted", "Accepted", "Accepted"]
    assert "104 command C_SC_NA_1 0x6001 = True" in result.stderr
    assert "104 command C_SE_NC_1 0x6202 = 100.0" in result.stderr
    assert result.stderr.rstrip().endswith("0 invalid")


def test_times_may_be_absolute_and_connectors_are_inferred(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        {"t": "2026-01-01T08:00:00+08:00", "ioa": "0x0042", "type": "M_SP_NA_1", "value": True},
        {"t": "2026-01-01T00:00:05Z", "ioa": 0x0041, "type": "M_SP_NA_1", "value": True},
        {"t": 6, "ioa": "0x9999", "type": "M_SP_NA_1", "value": True},
        {"t": 7, "link": "down"},
    ]
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    result = runner.invoke(app, ["mappings", "replay", str(DC), str(events)])
    assert result.exit_code == 0, result.output
    assert "0x9999 (M_SP_NA_1) is not in the mapping table" in result.stderr
    statuses = [
        (f[3]["evseId"], f[3]["connectorStatus"])
        for _, f in frames(result.stdout)
        if f[0] == 2 and f[2] == "StatusNotification"
    ]
    assert sorted(statuses) == [(1, "Unavailable"), (2, "Unavailable")]  # after the link grace


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('{"ioa": 1, "type": "M_SP_NA_1", "value": true}', "each line is an object with t"),
        ('{"t": 1, "ioa": "0x1000000", "type": "M_SP_NA_1", "value": true}', "out of range"),
        ('{"t": 1, "ioa": 1, "type": "C_SC_NA_1", "value": true}', "monitoring type id"),
        ('{"t": 1, "ioa": 1, "type": "M_SP_NA_1", "value": "on"}', "boolean or a number"),
        ('{"t": 1, "ioa": 1, "type": "M_SP_NA_1", "valeu": 1}', "unknown keys"),
        ('{"t": 1, "link": "sideways"}', "link is up or down"),
    ],
)
def test_a_broken_events_file_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"t": 0, "ioa": 34, "type": "M_SP_NA_1", "value": true}\n' + line + "\n")
    result = runner.invoke(app, ["mappings", "replay", str(DC), str(events)])
    assert result.exit_code == 1
    assert f"{events}:2: " in result.stderr
    assert message in result.stderr


def test_time_going_back_is_refused(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"t": 5, "link": "up"}\n{"t": 4, "link": "down"}\n')
    result = runner.invoke(app, ["mappings", "replay", str(DC), str(events)])
    assert result.exit_code == 1
    assert "goes back in time" in result.stderr


def test_an_invalid_table_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "broken.yaml"
    table.write_text("identity: {vendor_name: X}\n")
    result = runner.invoke(app, ["mappings", "replay", str(table), str(SESSION)])
    assert result.exit_code == 1
    assert f"{table}:" in result.stderr


class _Strict(OfficialSchemas):
    """The official schemas, but StatusNotification is never valid: an invalid frame on demand."""

    def check(
        self, version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]
    ) -> Violation | None:
        if action == "StatusNotification" and kind is PayloadKind.REQUEST:
            return Violation("test", "", "refused by the test")
        return super().check(version, action, kind, payload)


def test_an_invalid_frame_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("adapters.schemas.OfficialSchemas", _Strict)
    result = runner.invoke(app, ["mappings", "replay", str(DC), str(SESSION)])
    assert result.exit_code == 1
    assert "INVALID" in result.stderr


CARD_SESSION = ROOT / "mappings" / "examples" / "example-dialin-card-session.jsonl"


def test_replay_of_a_vendor_card_session_by_table_name() -> None:
    """Registration, a blocked and an accepted card (C01), a card session (E02) stopped by card
    (E06) and its settlement record sent twice: one Ended from the record, acknowledged twice."""
    result = runner.invoke(
        app,
        [
            "mappings",
            "replay",
            "example-dialin-card",
            str(CARD_SESSION),
            "--start",
            "2026-12-07T02:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    calls = [frame for _, frame in frames(result.stdout) if frame[0] == 2]
    oracle = FrameOracle()
    for frame in calls:
        oracle.receive(json.dumps(frame))
    assert oracle.problems == []
    tokens = [frame[3]["idToken"]["idToken"] for frame in calls if frame[2] == "Authorize"]
    assert tokens == ["1111222233334444", "1234567890123456", "1234567890123456"]
    events = [frame[3] for frame in calls if frame[2] == "TransactionEvent"]
    assert [e["eventType"] for e in events].count("Ended") == 1
    started, ended = events[0], events[-1]
    assert (started["triggerReason"], started["idToken"]["idToken"]) == (
        "Authorized",
        "1234567890123456",
    )
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == (
        "StopAuthorized",
        "Local",
    )
    assert ended["customData"]["settlement"]["amount"] == 12.34
    assert ended["meterValue"][0]["sampledValue"][0]["value"] == 1_001_500
    assert "registration: id 'SN20260001', answered AA 55 01 00" in result.stderr
    assert "card_answer 0x7001: result=2" in result.stderr  # the blocked card
    assert result.stderr.count("settlement_ack 0x7101: result=0") == 2


def test_mappings_list_names_the_shipped_tables() -> None:
    result = runner.invoke(app, ["mappings", "list"])
    assert result.exit_code == 0, result.output
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert names == ["example-dialin-card", "gb-ac-charger", "gb-dc-charger"]
    checked = runner.invoke(app, ["mappings", "validate", "gb-dc-charger", "example-dialin-card"])
    assert checked.exit_code == 0, checked.output
