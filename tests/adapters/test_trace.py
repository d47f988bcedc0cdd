"""Message traces: masking, correlation (in the driver, through a real bridge), rotation, the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from structlog.testing import capture_logs
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.cli.trace import TraceFormatter, follow_lines, last_lines
from adapters.config import BridgeConfig
from adapters.connection import MemoryConnection
from adapters.driver import CoreDriver
from adapters.ops.logs import get_logger
from adapters.ops.trace import (
    MAX_DEPTH,
    TOKEN_KEYS,
    StationTrace,
    TraceTarget,
    _Writer,
    flush_traces,
    mask_frame,
    mask_token,
    open_trace,
    trace_path,
)
from bridge.effects import Effect, Send, Side
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.iec104_charger import idle_charger, station_entry
from tests.peers import connected_charger, connected_charger16, now_iso, running_csms

TAG = "04A2B3C4D5E6F7"
runner = CliRunner()


class ListWriter:
    """Stands in for the writer thread: keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def put(self, target: TraceTarget, line: bytes) -> None:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        self.lines.append(orjson.loads(line))


def station_trace(writer: Any, station_id: str = "CP-1") -> StationTrace:
    return StationTrace(station_id, TraceTarget(Path("unused.jsonl"), 1 << 20, 1), writer=writer)


# --- masking ---------------------------------------------------------------------------------------


def test_mask_token_keeps_two_characters_each_end_of_long_tokens() -> None:
    assert mask_token(TAG) == "04****F7"
    assert mask_token("12345678") == "12****78"
    assert mask_token("1234567") == "****"
    assert mask_token("") == "****"


def test_ocpp_16_and_201_tokens_and_passwords_are_masked() -> None:
    frames: list[Any] = [
        [2, "1", "StartTransaction", {"connectorId": 1, "idTag": TAG, "meterStart": 0}],
        [3, "1", {"idTagInfo": {"status": "Accepted", "parentIdTag": "PARENT-0001"}}],
        [2, "2", "SendLocalList", {"listVersion": 1, "localAuthorizationList": [{"idTag": TAG}]}],
        [2, "3", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "0123456789abcdef"}],
        [
            2,
            "4",
            "TransactionEvent",
            {
                "idToken": {
                    "idToken": TAG,
                    "type": "ISO14443",
                    "additionalInfo": [{"additionalIdToken": "EXTRA-123456", "type": "x"}],
                },
            },
        ],
        [
            3,
            "4",
            {
                "idTokenInfo": {
                    "status": "Accepted",
                    "groupIdToken": {"idToken": "GROUP-0001", "type": "Central"},
                }
            },
        ],
        [
            2,
            "5",
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "s3cret-s3cret-s3cret",
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                    }
                ]
            },
        ],
        [2, "6", "SetNetworkProfile", {"connectionData": {"vpn": {"password": "hunter2-hunter2"}}}],
    ]
    originals = json.dumps(frames)
    masked = [mask_frame(json.loads(json.dumps(frame))) for frame in frames]
    text = json.dumps(masked)
    for secret in (TAG, "PARENT-0001", "0123456789abcdef", "EXTRA-123456", "GROUP-0001"):
        assert secret not in text
    for secret in ("s3cret-s3cret-s3cret", "hunter2-hunter2"):
        assert secret not in text
    assert masked[0][3] == {"connectorId": 1, "idTag": "04****F7", "meterStart": 0}
    assert masked[4][3]["idToken"]["type"] == "ISO14443"  # the type is no secret
    assert masked[4][3]["idToken"]["idToken"] == "04****F7"
    assert masked[5][2]["idTokenInfo"]["groupIdToken"] == {"idToken": "GR****01", "type": "Central"}
    assert masked[3][3] == {"key": "AuthorizationKey", "value": "********"}
    assert json.dumps(frames) == originals


def test_a_frame_that_is_not_json_is_traced_as_masked_text() -> None:
    writer = ListWriter()
    trace = station_trace(writer)
    trace.input((Side.SOUTH, f'[2,"1","Authorize",{{"idTag":"{TAG}"'))
    trace.input((Side.SOUTH, b'[2,"2","Authorize",{"idTag":"04A2B3C4D5\xff'))
    first, second = writer.lines
    assert first["raw"] is True
    assert first["frame"] == '[2,"1","Authorize",{"idTag":"04****F7"'
    assert "04A2B3" not in second["frame"]


def test_too_deep_a_frame_is_cut_not_an_exception() -> None:
    frame: Any = TAG
    for depth in range(400):
        frame = {"idToken": frame} if depth % 2 else [frame]
    masked = mask_frame(frame)
    text = orjson.dumps(masked).decode()
    assert TAG not in text
    assert text.count("[") <= MAX_DEPTH + 1


_KEYS = st.sampled_from(
    [
        *sorted(TOKEN_KEYS),
        "type",
        "key",
        "value",
        "attributeValue",
        "variable",
        "name",
        "vpnPassword",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["AuthorizationKey", "BasicAuthPassword", TAG])
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=40,
)


def _exposed(value: Any, under_token: bool = False) -> Iterator[Any]:
    """Every scalar a token key holds (at any depth, but an IdTokenType's `type`)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if under_token and key == "type" and isinstance(item, str):
                continue
            yield from _exposed(item, under_token or key in TOKEN_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from _exposed(item, under_token)
    elif under_token:
        yield value


def _under_password_keys(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            if "assword" in key or "ASSWORD" in key:
                yield item
            else:
                yield from _under_password_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _under_password_keys(item)


def _assert_no_token_survives(masked: Any) -> None:
    assert all(value in (None, "********") for value in _under_password_keys(masked))
    for value in _exposed(masked):
        if isinstance(value, bool) or value is None:
            continue
        assert isinstance(value, str), value  # numbers are masked too
        if value.startswith("…"):  # a subtree cut for its depth
            continue
        assert len(value) <= 8 and "****" in value, value


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_masking_any_json_never_raises_and_leaves_no_token(frame: Any) -> None:
    _assert_no_token_survives(mask_frame(frame))


@settings(max_examples=200, deadline=None)
@given(_JSON, st.booleans())
def test_traced_lines_of_any_json_frame_leave_no_token(frame: Any, ascii_only: bool) -> None:
    # Through the whole line: text → parse → mask → serialise (escaped key names included).
    writer = ListWriter()
    trace = station_trace(writer)
    trace.input((Side.SOUTH, json.dumps(frame, ensure_ascii=ascii_only)))
    trace.sent(Side.NORTH, json.dumps(frame, ensure_ascii=ascii_only).encode())
    for line in writer.lines:
        assert "raw" not in line
        _assert_no_token_survives(line["frame"])


# --- correlation -----------------------------------------------------------------------------------


def test_every_input_opens_a_correlation_and_answers_point_to_their_call() -> None:
    writer = ListWriter()
    trace = station_trace(writer)
    trace.input((Side.SOUTH, '[2,"c1","StartTransaction",{}]'))
    trace.sent(Side.NORTH, '[2,"b1","TransactionEvent",{}]')
    trace.input(None)  # a timer: nothing sent, no id spent
    trace.input((Side.NORTH, '[3,"b1",{}]'))
    trace.sent(Side.SOUTH, '[3,"c1",{"transactionId":1}]')
    trace.input(None)  # a timer that sends
    trace.sent(Side.NORTH, '[2,"b2","Heartbeat",{}]')
    corrs = [line["corr"] for line in writer.lines]
    assert corrs[0] == corrs[1] != corrs[2] == corrs[3] != corrs[4]
    assert len(set(corrs)) == 3
    prefix, first = corrs[0].rsplit("-", 1)
    assert [c.rsplit("-", 1) for c in set(corrs)] == [
        [prefix, c.rsplit("-", 1)[1]] for c in set(corrs)
    ]
    assert [int(c.rsplit("-", 1)[1]) for c in dict.fromkeys(corrs)] == [
        int(first),
        int(first) + 1,
        int(first) + 2,
    ]
    assert writer.lines[2]["re"] == corrs[0]  # the CSMS's answer to the TransactionEvent
    assert writer.lines[3]["re"] == corrs[0]  # the .conf answers the StartTransaction
    assert "re" not in writer.lines[4]
    line = writer.lines[0]
    assert set(line) == {"t", "station", "side", "dir", "corr", "frame"}
    assert (line["station"], line["side"], line["dir"]) == ("CP-1", "south", "in")
    assert line["t"].endswith("Z") and "T" in line["t"]


class _RelayCore:
    """Greets the CSMS when it connects, relays every frame to the other side, and once a frame has
    arrived sends one more from its timer."""

    def __init__(self) -> None:
        self._effects: list[Effect] = []
        self._deadline: float | None = None
        self.timer_fired = asyncio.Event()

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        if side is Side.NORTH:
            self._effects.append(Send(Side.NORTH, '[2,"n1","BootNotification",{}]'))

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        self._effects.append(Send(side.other, data if isinstance(data, str) else data.decode()))
        self._deadline = now

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        pass

    def handle_timer(self, now: float, wall: float) -> None:
        self._deadline = None
        self._effects.append(Send(Side.SOUTH, '[2,"s1","TriggerMessage",{}]'))
        self.timer_fired.set()

    def next_deadline(self) -> float | None:
        return self._deadline

    def effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects


async def test_the_driver_traces_inputs_sends_and_timers_each_under_its_own_id() -> None:
    writer = ListWriter()
    core = _RelayCore()
    logs = {side: get_logger() for side in Side}
    driver = CoreDriver(core, logs, trace=station_trace(writer))
    south, north = MemoryConnection("ocpp1.6"), MemoryConnection("ocpp1.6")
    driver.attach(Side.SOUTH, south)
    driver.attach(Side.NORTH, north)
    tasks = [asyncio.create_task(driver.serve(side)) for side in Side]
    await asyncio.sleep(0)  # the driver listens
    south.deliver(f'[2,"c1","Authorize",{{"idTag":"{TAG}"}}]')
    await asyncio.wait_for(core.timer_fired.wait(), 5)
    await south.close()
    await north.close()
    await asyncio.gather(*tasks)
    seen = [(line["side"], line["dir"], line["frame"][1], line["corr"]) for line in writer.lines]
    assert [s[:3] for s in seen] == [
        ("north", "out", "n1"),  # sent when the CSMS connection was made
        ("south", "in", "c1"),
        ("north", "out", "c1"),  # caused by the frame above
        ("south", "out", "s1"),  # sent from the timer
    ]
    corrs = [s[3] for s in seen]
    assert corrs[1] == corrs[2]
    assert len({corrs[0], corrs[1], corrs[3]}) == 3
    assert writer.lines[1]["frame"][3] == {"idTag": "04****F7"}
    assert north.sent[1] == f'[2,"c1","Authorize",{{"idTag":"{TAG}"}}]'  # the wire is untouched


# --- a real bridge ---------------------------------------------------------------------------------


def _read_trace(path: Path) -> list[dict[str, Any]]:
    assert flush_traces()
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _find(lines: list[dict[str, Any]], side: str, direction: str, action: str) -> dict[str, Any]:
    return next(
        line
        for line in lines
        if (line["side"], line["dir"]) == (side, direction)
        and "frame" in line
        and line["frame"][0] == 2
        and line["frame"][2] == action
    )


async def test_a_16_start_transaction_shares_its_corr_with_the_transaction_event(
    tmp_path: Path,
) -> None:
    station = "CP16-T"
    async with running_csms() as csms:
        config = bridge_config(
            csms.url, [{"id": station, "protocol": "ocpp1.6"}], bridge={"trace_dir": str(tmp_path)}
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger16(south_url(bridge), station) as (charger, _, _oracle),
        ):
            await charger.call(
                call16.BootNotification(charge_point_vendor="Acme", charge_point_model="T")
            )
            session = await csms.session(station)
            start = await charger.call(
                call16.StartTransaction(
                    connector_id=1, id_tag=TAG, meter_start=0, timestamp=now_iso()
                )
            )
            assert isinstance(start.transaction_id, int)
            await session.charge_point.call(call201.Reset(type="Immediate"))
            await charger.wait_for("Reset")
    path = trace_path(tmp_path, station)
    lines = _read_trace(path)
    start_line = _find(lines, "south", "in", "StartTransaction")
    event_line = _find(lines, "north", "out", "TransactionEvent")
    assert start_line["corr"] == event_line["corr"]
    assert event_line["frame"][3]["eventType"] == "Started"
    # The .conf answers the StartTransaction ("re"), whichever input released it.
    conf = next(
        line
        for line in lines
        if line["side"] == "south"
        and line["dir"] == "out"
        and line["frame"][0] == 3
        and line["frame"][1] == start_line["frame"][1]
    )
    assert conf["re"] == start_line["corr"]
    # A CSMS request and the 1.6 call it became.
    reset_in = _find(lines, "north", "in", "Reset")
    reset_out = _find(lines, "south", "out", "Reset")
    assert reset_in["corr"] == reset_out["corr"]
    assert TAG not in path.read_text()
    assert start_line["frame"][3]["idTag"] == "04****F7"
    assert {line["station"] for line in lines} == {station}


async def test_a_201_pass_through_frame_and_its_forward_share_a_corr(tmp_path: Path) -> None:
    station = "CP201-T"
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [{"id": station, "protocol": "ocpp2.0.1"}],
            bridge={"trace_dir": str(tmp_path / "traces")},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), station) as (charger, _, _oracle),
        ):
            await charger.call(call201.Authorize(id_token={"id_token": TAG, "type": "ISO14443"}))
    lines = _read_trace(tmp_path / "traces" / f"{station}.jsonl")
    south_in = _find(lines, "south", "in", "Authorize")
    north_out = _find(lines, "north", "out", "Authorize")
    assert south_in["corr"] == north_out["corr"]
    answers = [line for line in lines if line["frame"][0] == 3]
    assert [(a["side"], a["dir"]) for a in answers] == [("north", "in"), ("south", "out")]
    assert answers[0]["re"] == south_in["corr"] and answers[1]["re"] == south_in["corr"]
    assert north_out["frame"][3]["idToken"] == {"idToken": "04****F7", "type": "ISO14443"}


async def test_a_104_point_change_shares_its_corr_with_the_frames_it_caused(
    tmp_path: Path,
) -> None:
    station = "GB104-T"
    async with idle_charger() as charger, running_csms() as csms:
        config = bridge_config(
            csms.url,
            [station_entry(station, charger.port)],
            bridge={"trace_dir": str(tmp_path)},
        )
        async with running_bridge(config):
            session = await csms.session(station)
            cp = session.charge_point
            await csms.wait_for(lambda: "StatusNotification" in cp.actions())
            await charger.update(0x0021, True)  # plug in: Available → Occupied
            await csms.wait_for(
                lambda: any(
                    p["connector_status"] == "Occupied" for p in cp.payloads("StatusNotification")
                )
            )
            answer = await cp.call(
                call201.RequestStartTransaction(
                    id_token={"id_token": TAG, "type": "ISO14443"}, remote_start_id=5
                )
            )
            assert answer.status == "Accepted"
    lines = _read_trace(trace_path(tmp_path, station))
    plug = next(
        line
        for line in lines
        if line.get("iec104", {}).get("ioa") == "0x0021"
        and line["iec104"]["value"] is True
        and line["dir"] == "in"
    )
    occupied = next(
        line
        for line in lines
        if "frame" in line
        and line["frame"][0] == 2
        and line["frame"][2] == "StatusNotification"
        and line["frame"][3]["connectorStatus"] == "Occupied"
    )
    assert plug["side"] == "south"
    assert occupied["corr"] == plug["corr"]
    # the CSMS's request and the 104 command it became
    request = _find(lines, "north", "in", "RequestStartTransaction")
    command = next(line for line in lines if "command" in line.get("iec104", {}))
    assert command["corr"] == request["corr"]
    assert command["iec104"] == {
        "command": command["iec104"]["command"],
        "ioa": "0x6001",
        "type": "C_SC_NA_1",
        "value": True,
        "purpose": "RequestStartTransaction",
    }
    confirmed = next(line for line in lines if "confirmed" in line.get("iec104", {}))
    assert confirmed["iec104"]["positive"] is True
    assert any(line.get("iec104") == {"link": "up"} for line in lines)
    assert TAG not in trace_path(tmp_path, station).read_text()
    formatted = [TraceFormatter().format(orjson.dumps(line)) for line in (plug, command)]
    assert all("IEC 104" in text for text in formatted)


def test_tracing_is_off_by_default() -> None:
    config = BridgeConfig.model_validate({"csms": {"url": "ws://127.0.0.1:9/ocpp"}})
    assert config.bridge.trace_dir == ""
    assert open_trace(config, "CP-1") is None


# --- rotation and the writer -----------------------------------------------------------------------


def _write(tmp_path: Path, count: int, *, max_bytes: int, keep: int) -> Path:
    writer = _Writer(interval=0.01)
    target = TraceTarget(tmp_path / "CP-R.jsonl", max_bytes, keep)
    trace = StationTrace("CP-R", target, writer=writer)
    try:
        for n in range(count):
            trace.input((Side.SOUTH, f'[2,"{n}","Heartbeat",{{}}]'))
            if n % 7 == 0:
                assert writer.flush()  # several batches, not one
        assert writer.flush()
    finally:
        writer.close()
    return target.path


def test_files_rotate_before_passing_the_size_and_keep_only_trace_keep(tmp_path: Path) -> None:
    path = _write(tmp_path, 200, max_bytes=4096, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["CP-R.jsonl", "CP-R.jsonl.1", "CP-R.jsonl.2"]
    ids: list[int] = []
    for name in ("CP-R.jsonl.2", "CP-R.jsonl.1", "CP-R.jsonl"):
        data = (tmp_path / name).read_bytes()
        assert len(data) <= 4096
        ids += [int(orjson.loads(line)["frame"][1]) for line in data.splitlines()]
    assert ids == list(range(ids[0], 200))  # in order, nothing lost between the kept files
    assert ids[0] > 0  # older lines went with the rotated file that fell off
    assert path.exists()


def test_keep_zero_starts_the_file_over(tmp_path: Path) -> None:
    _write(tmp_path, 100, max_bytes=4096, keep=0)
    assert [p.name for p in tmp_path.iterdir()] == ["CP-R.jsonl"]


def test_an_unwritable_trace_is_logged_and_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = _Writer(interval=0.01)
    trace = StationTrace("CP-X", TraceTarget(blocker / "CP-X.jsonl", 4096, 1), writer=writer)
    try:
        with capture_logs() as logs:
            trace.input((Side.SOUTH, '[2,"1","Heartbeat",{}]'))
            trace.input((Side.SOUTH, '[2,"2","Heartbeat",{}]'))
            assert writer.flush()
            trace.input((Side.SOUTH, '[2,"3","Heartbeat",{}]'))
            assert writer.flush()
    finally:
        writer.close()
    assert blocker.read_text() == "not a folder"
    failures = [entry for entry in logs if entry["event"] == "trace.write_failed"]
    assert len(failures) == 1  # once, not per line or per batch
    assert failures[0]["path"] == str(blocker / "CP-X.jsonl")


def test_a_full_queue_drops_lines_and_says_how_many(tmp_path: Path) -> None:
    writer = _Writer(max_queued=0)
    trace = StationTrace("CP-Q", TraceTarget(tmp_path / "q.jsonl", 4096, 1), writer=writer)
    trace.input((Side.SOUTH, '[2,"1","Heartbeat",{}]'))
    trace.input((Side.SOUTH, '[2,"2","Heartbeat",{}]'))
    assert writer.flush()
    assert not (tmp_path / "q.jsonl").exists()
    writer._max_queued = 10
    with capture_logs() as logs:
        trace.input((Side.SOUTH, '[2,"3","Heartbeat",{}]'))
        assert writer.flush()
    writer.close()
    assert [(e["event"], e["count"]) for e in logs] == [("trace.lines_dropped", 2)]
    assert len((tmp_path / "q.jsonl").read_bytes().splitlines()) == 1


# --- the CLI ---------------------------------------------------------------------------------------


def _config(tmp_path: Path, trace_dir: str | None) -> Path:
    bridge = f'[bridge]\ntrace_dir = "{trace_dir}"\n' if trace_dir is not None else ""
    path = tmp_path / "bridge.toml"
    path.write_text(
        bridge + '[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n'
        '[[stations]]\nid = "CP16-1"\nprotocol = "ocpp1.6"\n'
        '[[stations]]\nid = "CP201-1"\nprotocol = "ocpp2.0.1"\n'
    )
    return path


def _sample_trace(trace_dir: Path) -> None:
    writer = _Writer(interval=0.01)
    target = TraceTarget(trace_path(trace_dir, "CP16-1"), 1 << 20, 2)
    trace = StationTrace("CP16-1", target, writer=writer)
    try:
        trace.input(
            (Side.SOUTH, f'[2,"c7","StartTransaction",{{"connectorId":1,"idTag":"{TAG}"}}]')
        )
        trace.sent(Side.NORTH, '[2,"b9","TransactionEvent",{"eventType":"Started"}]')
        trace.input((Side.NORTH, '[3,"b9",{}]'))
        trace.sent(Side.SOUTH, '[3,"c7",{"transactionId":1}]')
        trace.input((Side.NORTH, '[2,"b10","GetLog",{}]'))
        trace.sent(Side.NORTH, '[4,"b10","NotSupported","GetLog has no 1.6 counterpart",{}]')
        assert writer.flush()
    finally:
        writer.close()


def test_cli_prints_a_written_trace_readably(tmp_path: Path) -> None:
    _sample_trace(tmp_path / "traces")
    config = _config(tmp_path, str(tmp_path / "traces"))
    result = runner.invoke(app, ["trace", "CP16-1", "--config", str(config), "--no-follow"])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert len(out) == 6
    corr = out[0].split()[3]
    assert out[0].split()[1:5] == ["south", "in", corr, "StartTransaction"]
    assert '"idTag":"04****F7"' in out[0] and TAG not in result.stdout
    assert out[1].split()[1:5] == ["north", "out", corr, "TransactionEvent"]
    assert f"CALLRESULT TransactionEvent (re {corr})" in out[2]
    assert f"CALLRESULT StartTransaction (re {corr})" in out[3]
    assert out[2].split()[3] == out[3].split()[3] != corr
    assert "CALLERROR NotSupported GetLog" in out[5]
    assert "GetLog has no 1.6 counterpart" in out[5]

    result = runner.invoke(
        app, ["trace", "CP16-1", "-c", str(config), "--no-follow", "--lines", "2"]
    )
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2
    assert "CALLERROR NotSupported" in result.stdout  # its CALL is out of view: no action named


def test_cli_refuses_tracing_off_and_unknown_stations(tmp_path: Path) -> None:
    off = runner.invoke(app, ["trace", "CP16-1", "-c", str(_config(tmp_path, None)), "--no-follow"])
    assert off.exit_code == 2
    assert "tracing is off" in off.stderr and "trace_dir" in off.stderr
    config = _config(tmp_path, str(tmp_path))
    unknown = runner.invoke(app, ["trace", "NOPE", "-c", str(config), "--no-follow"])
    assert unknown.exit_code == 2
    assert "no station 'NOPE'" in unknown.stderr and "'CP16-1'" in unknown.stderr
    missing = runner.invoke(app, ["trace", "CP201-1", "-c", str(config), "--no-follow"])
    assert missing.exit_code == 0
    assert "no trace yet" in missing.stderr


def test_cli_help_names_the_options() -> None:
    result = runner.invoke(app, ["trace", "--help"])
    assert result.exit_code == 0
    for text in ("--follow", "--no-follow", "--lines", "--config", "STATION", "[bridge] trace_dir"):
        assert text in result.stdout


def test_last_lines_reach_into_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "CP.jsonl"
    path.with_name("CP.jsonl.2").write_bytes(b"a\nb\n")
    path.with_name("CP.jsonl.1").write_bytes(b"c\nd\n")
    path.write_bytes(b"e\nf\npartial")
    assert last_lines(path, 3) == [b"d", b"e", b"f"]
    assert last_lines(path, 10) == [b"a", b"b", b"c", b"d", b"e", b"f"]
    assert last_lines(path, 0) == []


def test_follow_survives_rotation_and_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "CP.jsonl"
    path.write_bytes(b"old\n")

    def append(data: bytes) -> None:
        with path.open("ab") as handle:
            handle.write(data)

    def rotate() -> None:
        append(b"last-of-old\n")  # written just before the rename: must not be lost
        path.rename(path.with_name("CP.jsonl.1"))

    steps = [
        lambda: append(b"one\ntw"),
        lambda: append(b"o\n"),
        rotate,
        lambda: None,  # no file for a moment
        lambda: path.write_bytes(b"three\n"),
        lambda: path.write_bytes(b""),  # truncated in place
        lambda: path.write_bytes(b"four\n"),
    ]

    def sleep(_: float) -> None:
        if steps:
            steps.pop(0)()

    seen = []
    for line in follow_lines(path, stop=lambda: not steps and len(seen) >= 5, sleep=sleep):
        seen.append(line)
        if len(seen) > 10:
            break
    assert seen == [b"one", b"two", b"last-of-old", b"three", b"four"]


def test_formatter_shows_what_it_cannot_read() -> None:
    formatter = TraceFormatter(excerpt=20)
    assert formatter.format(b"{not json").startswith("? ")
    raw = orjson.dumps(
        {"t": "x", "side": "south", "dir": "in", "corr": "a-1", "frame": "[2,", "raw": True}
    )
    assert "(not OCPP-J)" in formatter.format(raw)
    long = orjson.dumps(
        {
            "t": "x",
            "side": "south",
            "dir": "in",
            "corr": "a-1",
            "frame": [2, "1", "X", {"k": "v" * 50}],
        }
    )
    assert formatter.format(long).endswith("…")


@pytest.mark.parametrize("frame", [b"", b"[]", b"[9]", b"[2]", b'{"a":1}', b"[3,1]"])
def test_odd_frames_are_traced_and_formatted(frame: bytes) -> None:
    writer = ListWriter()
    trace = station_trace(writer)
    trace.input((Side.SOUTH, frame))
    (line,) = writer.lines
    assert TraceFormatter().format(orjson.dumps(line))
