"""`extends`: a table overrides another (a vendor's table on top of a shipped one), key by key.

Rules
- Mappings merge recursively: a key of the overriding table replaces or refines the same key of the base,
  keys it does not mention are inherited. So `connectors.blocks.status.points.lock_engaged.type:
  M_DP_NA_1` changes one type id and keeps the point's address, description and rules.
- A key set to `null` removes the key from the base (a point the vendor's charger does not have).
- Lists (the derived rules) and scalars are replaced whole: a rule list is read in order, so merging two
  orders item by item would be a guess.
- A point whose `kind` changes is replaced whole: fields of the old kind would be unknown keys of the new.
- The `extends` key itself is not inherited (each table names its own base).
- Nothing here reads files: the adapter finds the base table, this module only merges data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_tables(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    """The data of `override` laid over `base` (neither is modified)."""
    merged = _merge(base, override)
    merged.pop("extends", None)
    if "extends" in override and override["extends"] is not None:
        merged["extends"] = override["extends"]
    return merged


def _merge(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> dict[Any, Any]:
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
            continue
        previous = merged.get(key)
        if (
            isinstance(previous, Mapping)
            and isinstance(value, Mapping)
            and _same_kind(previous, value)
        ):
            merged[key] = _merge(previous, value)
        else:
            merged[key] = _copy(value)
    return merged


def _same_kind(base: Mapping[Any, Any], override: Mapping[Any, Any]) -> bool:
    return "kind" not in override or base.get("kind") == override["kind"]


def _copy(value: Any) -> Any:
    # nulls below an inherited key are removals only where they override something; elsewhere they stay
    # as written, so a new point with `description: null` is validated as written
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
