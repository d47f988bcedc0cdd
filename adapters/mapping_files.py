"""Mapping tables on disk: YAML 1.2 with a position for every node, `extends`, PATH:LINE:COLUMN problems.

Rules
- Files are read as UTF-8 YAML 1.2 with ruamel.yaml's round-trip loader, which keeps the line and column
  of every key and value (1.2: `0x0021` is an integer, `on`/`off`/`yes` are strings). One document per
  file; duplicate keys are errors.
- Every problem is a `MappingProblem(path, line, column, message)`, printed `PATH:LINE:COLUMN: message`
  with 1-based line and column: YAML syntax, unknown keys, wrong values, bad or duplicate IOAs, rules
  naming unknown points, unknown time zones. Unknown and missing keys point at the key, other problems
  at the value; a problem involving a second place (the other use of an IOA) names it in the message.
  Problems that concern a whole file (unreadable, empty) are reported at 1:1.
- `extends: NAME` (no '/') is a shipped table, found with importlib.resources in the `mappings` package,
  so it works from any working directory; `extends: ./base.yaml` is a path relative to the extending
  file. Chains are allowed, cycles are errors. A problem in a base table is reported in that table's file.
- Merging follows `bridge.stations.iec104.overrides`; a merged value keeps the position of the file it came from.
- `compile_file` compiles for the station's connector count; `check_paths` validates files and folders
  (the *.yaml and *.yml files of a folder, not recursive) for the most connectors each table allows.
  A folder may hold other YAML tables (mappings/ocpp16-config.yaml): a file whose top level has none of
  the language's keys (extends, station, identity, charger, connectors, rules) is skipped and listed.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bridge.stations.iec104 import CompiledTable, MappingTable, TableError, TableProblem
from bridge.stations.iec104 import compile_table as _compile
from bridge.stations.iec104.checks import validate_table
from bridge.stations.iec104.model import TIME_ZONE_PATTERN
from bridge.stations.iec104.overrides import merge_tables
from bridge.stations.iec104.problems import Path as DataPath
from bridge.stations.iec104.vocabulary import hint

SHIPPED_PACKAGE = "mappings"
SUFFIXES = (".yaml", ".yml")
Position = tuple[str, int, int]


@dataclass(frozen=True, slots=True, order=True)
class MappingProblem:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class MappingFileError(Exception):
    """The table cannot be used; `problems` lists every reason, each with its file, line and column."""

    def __init__(self, problems: Iterable[MappingProblem]) -> None:
        self.problems: tuple[MappingProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True, slots=True)
class LoadedTable:
    """A validated table and the positions of its values, to locate problems found later."""

    table: MappingTable
    source: str
    positions: _Positions

    def locate(self, problem: TableProblem) -> MappingProblem:
        return self.positions.locate(problem)

    def compile(self, connectors: int | None = None) -> CompiledTable:
        """The table for a station with `connectors` connectors (default: the most it allows)."""
        try:
            return _compile(self.table, connectors)
        except TableError as exc:
            raise MappingFileError(self.locate(p) for p in exc.problems) from None


def shipped_tables() -> list[str]:
    """Names of the tables shipped in the `mappings` package (usable as `extends: NAME`)."""
    folder = resources.files(SHIPPED_PACKAGE)
    return sorted(
        item.name.removesuffix(".yaml")
        for item in folder.iterdir()
        if item.name.endswith(".yaml") and is_iec104_table(item)
    )


def shipped_table(name: str) -> Traversable:
    return resources.files(SHIPPED_PACKAGE) / f"{name.removesuffix('.yaml')}.yaml"


def table_path(argument: str | Path) -> Path:
    """A command's table argument: a file's path, or a shipped table's name (`gb-dc-charger`) where no
    file of that name is (the installed package's file)."""
    path = Path(argument)
    text = str(argument)
    if not path.exists() and "/" not in text and text.removesuffix(".yaml") in shipped_tables():
        return Path(str(shipped_table(text)))
    return path


def load_file(path: str | Path) -> LoadedTable:
    """Read, resolve `extends`, validate. Raises MappingFileError."""
    return _Loader().load(_Source.of_path(Path(path)))


def load_reference(reference: str, relative_to: Path | None = None) -> LoadedTable:
    """A shipped table by name (`gb-dc-charger`) or, with a '/', a file relative to `relative_to`."""
    return _Loader().load(_Source.of_reference(reference, relative_to or Path.cwd()))


def compile_file(path: str | Path, connectors: int | None = None) -> CompiledTable:
    """Load and compile for `connectors` connectors. Raises MappingFileError."""
    return load_file(path).compile(connectors)


@dataclass(frozen=True, slots=True)
class CheckResult:
    checked: list[str]
    skipped: list[str]
    problems: list[MappingProblem]


def check_paths(paths: Iterable[str | Path]) -> CheckResult:
    """Validate files and folders. A file named explicitly is always checked; in a folder, YAML files
    that are no IEC 104 table (`is_iec104_table`) are skipped."""
    files: list[Path] = []
    skipped: list[Path] = []
    problems: list[MappingProblem] = []
    for given in paths:
        path = table_path(given)
        if not path.is_dir():
            files.append(path)
            continue
        found, passed = _tables_in(path)
        skipped.extend(passed)
        if not found:
            problems.append(MappingProblem(str(path), 1, 1, "no IEC 104 mapping tables here"))
        files.extend(found)
    for path in files:
        try:
            load_file(path)
        except MappingFileError as exc:
            problems.extend(exc.problems)
    return CheckResult([str(p) for p in files], [str(p) for p in skipped], problems)


def load_folder(folder: str | Path) -> dict[str, LoadedTable]:
    """Every IEC 104 table of a folder, by file stem. Raises MappingFileError listing all problems."""
    tables: dict[str, LoadedTable] = {}
    problems: list[MappingProblem] = []
    folder = Path(folder)
    if not folder.is_dir():
        raise MappingFileError([MappingProblem(str(folder), 1, 1, "not a folder")])
    for path in _tables_in(folder)[0]:
        try:
            tables[path.stem] = load_file(path)
        except MappingFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise MappingFileError(problems)
    return tables


def is_iec104_table(file: Traversable) -> bool:
    """Whether a YAML file is meant as an IEC 104 mapping table: its top level has a key of the language
    besides `description`. Folders hold other tables too (mappings/ocpp16-config.yaml); a file that
    cannot be read or parsed counts as a table, so that checking it reports why."""
    try:
        document = YAML(typ="safe", pure=True).load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError):
        return True
    if not isinstance(document, dict):
        return True
    return bool(set(document) & _TABLE_KEYS)


_TABLE_KEYS = frozenset(MappingTable.model_fields) - {"description"}


def _tables_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """(tables, other YAML files) of a folder, not recursive, sorted."""
    tables: list[Path] = []
    others: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.suffix in SUFFIXES and path.is_file():
            (tables if is_iec104_table(path) else others).append(path)
    return tables, others


# --- sources and documents -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    display: str
    file: Traversable
    folder: Path | None  # where relative `extends` paths start; None for shipped tables

    @classmethod
    def of_path(cls, path: Path) -> _Source:
        return cls(str(path), path, path.parent)

    @classmethod
    def of_reference(cls, reference: str, relative_to: Path) -> _Source:
        if "/" in reference:
            return cls.of_path(relative_to / reference)
        shipped = shipped_table(reference)
        return cls(str(shipped), shipped, None)

    def key(self) -> str:
        file = self.file
        return str(file.resolve()) if isinstance(file, Path) and file.exists() else str(file)


@dataclass
class _Positions:
    """Data path → (file, line, column) of values and keys, across the files of an `extends` chain."""

    root: Position
    values: dict[DataPath, Position] = field(default_factory=dict)
    keys: dict[DataPath, Position] = field(default_factory=dict)

    def update(self, other: _Positions) -> None:
        """Take `other`'s positions where both know a path: the later file of a chain wins."""
        self.values.update(other.values)
        self.keys.update(other.keys)

    def where(self, path: DataPath, on_key: bool) -> Position:
        if on_key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.root

    def locate(self, problem: TableProblem) -> MappingProblem:
        source, line, column = self.where(problem.path, problem.on_key)
        message = problem.message
        if problem.related is not None:
            other = self.where(problem.related, True)
            message += f" (at {other[0]}:{other[1]}:{other[2]})"
        return MappingProblem(source, line, column, message)


class _Loader:
    def __init__(self) -> None:
        self.chain: list[str] = []

    def load(self, source: _Source) -> LoadedTable:
        data, positions = self.merged(source)
        # the zone database is the adapter's to read; checked beside the model's problems
        found = _time_zone_problems(data)
        try:
            table = validate_table(data)
        except TableError as exc:
            found = [*exc.problems, *found]
        if found:
            raise MappingFileError(sorted(positions.locate(p) for p in found))
        return LoadedTable(table, source.display, positions)

    def merged(self, source: _Source) -> tuple[Any, _Positions]:
        """The data of `source` laid over its `extends` chain, with positions."""
        self.chain.append(source.key())
        data, positions = _read(source)
        base = data.get("extends") if isinstance(data, dict) else None
        if base is None:
            return data, positions
        where = positions.where(("extends",), False)
        if not isinstance(base, str) or not base.strip():
            raise MappingFileError(
                [MappingProblem(*where, "extends names a shipped table or a ./relative/path.yaml")]
            )
        base_source = self._base(base, source, where)
        if base_source.key() in self.chain:
            names = " → ".join(Path(key).name for key in [*self.chain, base_source.key()])
            raise MappingFileError([MappingProblem(*where, f"extends cycle: {names}")])
        base_data, base_positions = self.merged(base_source)
        if not isinstance(base_data, dict):
            return data, positions  # _read already refused a table that is not a mapping
        base_positions.update(positions)
        base_positions.root = positions.root
        return merge_tables(base_data, data), base_positions

    def _base(self, reference: str, child: _Source, where: Position) -> _Source:
        if "/" in reference:
            if child.folder is None:
                message = f"a shipped table cannot extend a file ({reference})"
                raise MappingFileError([MappingProblem(*where, message)])
            base = _Source.of_reference(reference, child.folder)
            if not base.file.is_file():
                message = f"extends: no file {base.display}"
                raise MappingFileError([MappingProblem(*where, message)])
            return base
        base = _Source.of_reference(reference, Path.cwd())
        if not base.file.is_file():
            shipped = shipped_tables()
            message = (
                f"extends: no shipped table {reference!r}{hint(reference, shipped)}; shipped:"
                f" {', '.join(shipped)} (write ./{reference} for a file next to this one)"
            )
            raise MappingFileError([MappingProblem(*where, message)])
        return base


def _read(source: _Source) -> tuple[Any, _Positions]:
    display = source.display
    try:
        text = source.file.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise MappingFileError([MappingProblem(display, 1, 1, f"cannot read: {reason}")]) from None
    except UnicodeDecodeError:
        raise MappingFileError([MappingProblem(display, 1, 1, "not UTF-8 text")]) from None
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        message = f"YAML: {reason}".replace('"<unicode string>"', "this file")
        raise MappingFileError([MappingProblem(display, line, column, message)]) from None
    except YAMLError as exc:
        raise MappingFileError([MappingProblem(display, 1, 1, f"YAML: {exc}")]) from None
    positions = _Positions((display, 1, 1))
    if not isinstance(document, CommentedMap):
        problem = "empty file" if document is None else "a mapping table is a YAML mapping"
        raise MappingFileError([MappingProblem(display, 1, 1, problem)])
    problems: list[MappingProblem] = []
    data = _plain(document, (), display, positions, problems)
    if problems:
        raise MappingFileError(problems)
    return data, positions


def _plain(
    node: Any, path: DataPath, display: str, positions: _Positions, problems: list[MappingProblem]
) -> Any:
    """ruamel's round-trip objects → plain Python, recording the position of every key and value."""
    if isinstance(node, CommentedMap):
        result: dict[Any, Any] = {}
        for key, value in node.items():
            plain_key = _scalar(key)
            child = (*path, plain_key)
            spot = node.lc.data.get(key)
            if spot is not None:  # keys merged in with `<<` have no position of their own
                positions.keys[child] = (display, spot[0] + 1, spot[1] + 1)
                positions.values[child] = (display, spot[2] + 1, spot[3] + 1)
            result[plain_key] = _plain(value, child, display, positions, problems)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            spot = node.lc.data.get(index)
            if spot is not None:
                positions.values[child] = (display, spot[0] + 1, spot[1] + 1)
            items.append(_plain(value, child, display, positions, problems))
        return items
    if isinstance(node, TaggedScalar):
        source, line, column = positions.where(path, False)
        problems.append(MappingProblem(source, line, column, f"unsupported YAML tag {node.tag}"))
        return None
    return _scalar(node)


def _scalar(value: Any) -> Any:
    # ruamel's subclasses (HexInt, ScalarFloat, ScalarString…) become the plain types pydantic expects
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()  # YAML timestamps: let the model say what it expected instead
    return value


def _time_zone_problems(data: Any) -> list[TableProblem]:
    station = data.get("station") if isinstance(data, dict) else None
    name = station.get("time_zone") if isinstance(station, dict) else None
    if not isinstance(name, str) or not re.fullmatch(TIME_ZONE_PATTERN, name):
        return []  # absent, or refused by the model already
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zones = zoneinfo.available_timezones()
        return [
            TableProblem(("station", "time_zone"), f"unknown time zone {name!r}{hint(name, zones)}")
        ]
    return []
