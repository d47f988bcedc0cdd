"""Problems found in a mapping table, located by their path in the table's data.

Rules
- A `TableProblem` names its place as a path of keys and list indexes into the data as written
  (`("connectors", "blocks", "status", "points", "plug", "type")`), never as a pydantic location: union
  tags and validator names are dropped, so the adapter can turn the path into a file, line and column.
- `on_key` says the problem is the key itself (an unknown or missing key, a bad name): the adapter then
  points at the key rather than at its value. A missing key is reported at the mapping that lacks it.
- `related` is a second place involved (the other point of a duplicate IOA); the adapter adds its
  position to the message.
- `TableError` carries every problem found, in table order, never just the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class TableProblem:
    path: Path
    message: str
    on_key: bool = False
    related: Path | None = None

    def __str__(self) -> str:
        where = dotted(self.path) or "(table)"
        return f"{where}: {self.message}"


class TableError(ValueError):
    """The table cannot be used; `problems` lists why."""

    def __init__(self, problems: Iterable[TableProblem]) -> None:
        self.problems: tuple[TableProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def dotted(path: Sequence[str | int]) -> str:
    """connectors.blocks.status.points.plug.at, with list indexes as [0]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def data_path(data: Any, loc: Sequence[str | int]) -> Path:
    """The part of a pydantic error location that indexes into `data` (tags and the like dropped)."""
    node = data
    path: list[str | int] = []
    for part in loc:
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            continue  # a union tag or a validator's name, not a key of the data
        node = node[part]
        path.append(part)
    return tuple(path)


def lookup(data: Any, path: Path) -> Any:
    """The value at `path` in `data` (which must exist)."""
    node = data
    for part in path:
        node = node[part]
    return node
