"""Trace lines stay bounded and never fail, whatever a peer sends (issue 17 item 2): nesting deeper
than the JSON writer goes, nesting past Python's recursion limit, frames of any length."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from adapters.ops.trace import MAX_DEPTH, MAX_FRAME_CHARS, StationTrace, TraceTarget, mask_frame
from bridge.effects import Side

TAG = "04A2B3C4D5E6F7"


class _Lines:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def put(self, target: TraceTarget, line: bytes) -> None:
        self.lines.append(json.loads(line))


def _trace() -> tuple[StationTrace, _Lines]:
    writer = _Lines()
    target = TraceTarget(Path("unused.jsonl"), 1 << 20, 1)
    return StationTrace("CP-1", target, writer=writer), writer  # type: ignore[arg-type]


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        value, depth = value[-1], depth + 1
    return depth


def test_a_frame_nested_deeper_than_the_json_writer_goes_is_traced_cut() -> None:
    """orjson reads 1,024 levels but writes only 255: such a frame (with nothing to mask, so never
    walked) made every trace line of it a `trace.render_failed` traceback."""
    trace, writer = _trace()
    nested = "[" * 600 + "]" * 600
    with capture_logs() as logs:
        trace.input((Side.SOUTH, f'[2,"1","Heartbeat",{{"x":{nested}}}]'))
    assert logs == []
    (line,) = writer.lines
    assert line["frame"][:3] == [2, "1", "Heartbeat"]
    assert _depth(line["frame"][3]["x"]) <= MAX_DEPTH


def test_masking_is_iterative_past_the_recursion_limit() -> None:
    frame: Any = {"idToken": TAG}
    for _ in range(sys.getrecursionlimit() * 3):
        frame = [frame]
    masked = mask_frame(frame)
    assert _depth(masked) <= MAX_DEPTH
    assert TAG not in json.dumps(masked)


def test_a_frame_past_the_json_readers_nesting_is_traced_as_text() -> None:
    trace, writer = _trace()
    with capture_logs() as logs:
        trace.input((Side.SOUTH, "[" * 5000 + "]" * 5000))
    assert logs == []
    (line,) = writer.lines
    assert line["raw"] is True


def test_a_long_frame_is_traced_cut_with_its_length_and_its_tokens_masked() -> None:
    trace, writer = _trace()
    call = json.dumps([2, "7", "Authorize", {"idTag": TAG, "pad": "x" * (2 * MAX_FRAME_CHARS)}])
    trace.input((Side.SOUTH, call))
    trace.sent(Side.SOUTH, json.dumps([3, "7", {"idTagInfo": {"status": "Accepted"}}]))
    request, answer = writer.lines
    assert request["raw"] is True
    assert request["cut"] == len(call)
    assert len(request["frame"]) <= MAX_FRAME_CHARS
    assert TAG not in request["frame"]
    assert answer["re"] == request["corr"]  # still linked to the call it answers
