"""Where every point of a table lands for N connectors: stride expansion and the IOA checks.

Rules
- A charger-level point sits at its `ioa`. A point of a connector block sits, for connector n (1-based),
  at base + (n − 1) × stride + at.
- Every IOA must fit `link.ioa_size` bytes (1..0xFFFFFF with the standard 3) and be used once, across monitoring and control points and
  across connectors: a 104 outstation identifies an information object by its IOA alone.
- Points are placed in a fixed order: charger points, then connector 1's blocks, connector 2's blocks…,
  each in table order. A clash is reported at the later point's address, naming the earlier point as
  `related`; a clash between two connectors' copies of one block is the stride's fault and is reported
  at the block's `stride`. Each table location is reported once however many connectors repeat it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bridge.stations.iec104.model import MappingTable
from bridge.stations.iec104.points import AnyPoint
from bridge.stations.iec104.problems import Path, TableProblem
from bridge.stations.iec104.vocabulary import format_ioa


@dataclass(frozen=True, slots=True)
class Placement:
    """One point at one IOA: a charger point (connector None) or one connector's copy of a block point."""

    ioa: int
    connector: int | None
    key: str
    block: str | None
    point: AnyPoint

    @property
    def path(self) -> Path:
        if self.block is None:
            return ("charger", "points", self.key)
        return ("connectors", "blocks", self.block, "points", self.key)

    @property
    def address_path(self) -> Path:
        return (*self.path, "ioa" if self.block is None else "at")

    def describe(self) -> str:
        owner = "the charger" if self.connector is None else f"connector {self.connector}"
        return f"{owner}'s {self.key!r}"


def iter_points(table: MappingTable) -> Iterator[tuple[str | None, str, AnyPoint]]:
    """(block name or None, point name, point) for every point, charger points first, in table order."""
    for key, point in table.charger.points.items():
        yield None, key, point
    for block_name, block in table.connectors.blocks.items():
        for key, block_point in block.points.items():
            yield block_name, key, block_point


def place_points(
    table: MappingTable, connectors: int
) -> tuple[list[Placement], list[TableProblem]]:
    """Every point's placement for `connectors` connectors, and the IOA problems found."""
    placed: list[Placement] = []
    problems: list[TableProblem] = []
    by_ioa: dict[int, Placement] = {}
    reported: set[Path] = set()

    size = table.link.ioa_size
    top = (1 << (8 * size)) - 1
    limit = "(IOAs have 3 bytes)" if size == 3 else f"(link.ioa_size: IOAs have {size} bytes)"

    def place(candidate: Placement) -> None:
        if candidate.ioa > top:
            if candidate.address_path not in reported:
                reported.add(candidate.address_path)
                problems.append(
                    TableProblem(
                        candidate.address_path,
                        f"IOA {format_ioa(candidate.ioa)} of {candidate.describe()} is beyond"
                        f" {format_ioa(top)} {limit}",
                    )
                )
            return
        earlier = by_ioa.get(candidate.ioa)
        if earlier is None:
            by_ioa[candidate.ioa] = candidate
            placed.append(candidate)
            return
        clash = (
            f"IOA {format_ioa(candidate.ioa)} of {candidate.describe()} is already used by"
            f" {earlier.describe()}"
        )
        path = candidate.address_path
        if _same_block(candidate, earlier):
            # the cause is the stride, which an overriding table may have set far from the points
            assert candidate.block is not None
            block = table.connectors.blocks[candidate.block]
            span = max(point.at for point in block.points.values()) + 1
            path = ("connectors", "blocks", candidate.block, "stride")
            clash = (
                f"stride {format_ioa(block.stride)} is smaller than the block's span"
                f" {format_ioa(span)}: {clash}"
            )
        if path in reported:
            return
        reported.add(path)
        problems.append(TableProblem(path, clash, related=earlier.address_path))

    for key, charger_point in table.charger.points.items():
        place(Placement(charger_point.ioa, None, key, None, charger_point))
    for connector in range(1, connectors + 1):
        for block_name, block in table.connectors.blocks.items():
            start = block.base + (connector - 1) * block.stride
            for key, block_point in block.points.items():
                place(Placement(start + block_point.at, connector, key, block_name, block_point))
    return placed, problems


def _same_block(later: Placement, earlier: Placement) -> bool:
    return (
        later.block is not None
        and later.block == earlier.block
        and later.connector != earlier.connector
    )
