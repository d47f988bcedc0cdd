"""bridge.ocppj.naive_times: offset-less date-times from a CSMS read as UTC (issue 16 item 10)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.ocppj.naive_times import with_utc_offset


def test_only_a_full_offset_less_date_time_at_the_path_gets_a_z() -> None:
    payload = {"a": [{"t": "2026-12-07T10:00:00.123"}], "u": "2026-12-07T10:00:00"}
    assert with_utc_offset(payload, "a.0.t") == {
        "a": [{"t": "2026-12-07T10:00:00.123Z"}],
        "u": payload["u"],
    }
    assert payload["a"][0]["t"] == "2026-12-07T10:00:00.123"  # never changed in place
    assert with_utc_offset(payload, "u") == {**payload, "u": "2026-12-07T10:00:00Z"}
    for value in ("noon", "2026-12-07", "2026-12-07T10:00", "2026-12-07T10:00:00+01:00", 5):
        assert with_utc_offset({"t": value}, "t") is None
    assert with_utc_offset(payload, "a.7.t") is None and with_utc_offset(payload, "") is None


_json: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=3), _json, max_size=4), st.text(max_size=12))
def test_never_raises_and_changes_at_most_the_value_at_the_path(payload: Any, path: str) -> None:
    result = with_utc_offset(payload, path)
    assert result is None or (result != payload and set(result) == set(payload))
