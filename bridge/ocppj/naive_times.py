"""Date-times without a UTC offset from a CSMS, read as UTC (issue 16 item 10).

Rules
- Only what the schema refused for its date-time `format` is touched, and only when the value is a full
  ISO 8601 date and time without an offset (`2026-12-07T10:00:00.123`): it gets a `Z`. Anything else
  that fails the format stays refused: the meaning of those is not clear.
- The payload is never changed in place: the path to the value is copied, the rest is shared.
- Schema paths are dotted, array indices as numbers (`adapters.schemas`).
"""

from __future__ import annotations

import re
from typing import Any, Final

_NAIVE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?")


def with_utc_offset(payload: dict[str, Any], path: str) -> dict[str, Any] | None:
    """`payload` with the offset-less date-time at `path` read as UTC; None if there is none there."""
    if not path:
        return None
    result = _replace(payload, path.split("."))
    return result if isinstance(result, dict) else None


def _replace(node: Any, parts: list[str]) -> Any:
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        if head not in node:
            return None
        child = node[head]
    elif isinstance(node, list) and head.isdigit() and int(head) < len(node):
        child = node[int(head)]
    else:
        return None
    if rest:
        new_child = _replace(child, rest)
    elif isinstance(child, str) and _NAIVE.fullmatch(child):
        new_child = child + "Z"
    else:
        new_child = None
    if new_child is None:
        return None
    if isinstance(node, dict):
        return {**node, head: new_child}
    copy = list(node)
    copy[int(head)] = new_child
    return copy
