"""`ocpp-bridge mappings schema` and `mappings validate` agree (issue 18 item 3).

The tables: every shipped table (mappings/*.yaml that is an IEC 104 table) and every YAML table in the
README and docs/*.md (fenced blocks labelled yaml/yml or unlabelled whose top level is a table's, by
the same rule `validate` uses for a folder). For each, the JSON Schema (checked with the `jsonschema`
package, an implementation independent of the bridge) accepts it exactly when `validate` does.

Beyond the examples, each table is changed key by key: every key removed in turn, an unknown key
added beside it, a mapping's value replaced by a fraction (0.5) (every top-level key, the first few keys of
each mapping below, down to MAX_DEPTH: a shipped table has hundreds of keys, each change a validation). The schema must never refuse a change
`validate` accepts (an editor would show errors in a valid table, the issue's complaint); and for
the structural changes (an unknown key, a wrong type) it must refuse what `validate` refuses. What
only `validate` can know (a point name that does not exist, a time zone, IOAs that collide, what an
extended base table holds) is its alone: the schema is allowed to be weaker there.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML, YAMLError
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.mapping_files import MappingFileError, is_iec104_table, load_file

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(```+|~~~+)\s*([\w.+-]*)")


def fenced_blocks(text: str) -> Iterator[tuple[int, str, str]]:
    """(line of the opening fence, label, content) of every fenced block of a Markdown text."""
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, label, start = match.group(1), match.group(2).lower(), index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1
        yield start + 1, label, "".join(body)


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def doc_tables() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line, label, body in fenced_blocks(path.read_text(encoding="utf-8")):
            if label not in ("", "yaml", "yml"):
                continue
            try:
                data = load_yaml(body)
            except YAMLError:  # not YAML: no table
                continue
            if isinstance(data, dict) and _is_table_text(body):
                found[f"{path.relative_to(ROOT)}:{line}"] = body
    return found


def _is_table_text(body: str) -> bool:
    class Text:
        def read_text(self, encoding: str = "utf-8") -> str:
            return body

    return is_iec104_table(Text())  # type: ignore[arg-type]


def shipped_tables() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "mappings").glob("*.yaml"))
        if is_iec104_table(path)
    }


TABLES = {**shipped_tables(), **doc_tables()}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = CliRunner().invoke(app, ["mappings", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class Verdicts:
    def __init__(self, validator: jsonschema.Draft202012Validator, folder: Path) -> None:
        self.validator = validator
        self.path = folder / "table.yaml"

    def of(self, data: Any) -> tuple[bool, list[str], list[str]]:
        """(validate accepts, the schema's errors, validate's problems)."""
        out = io.StringIO()
        YAML(typ="safe", pure=True).dump(data, out)
        self.path.write_text(out.getvalue(), encoding="utf-8")
        try:
            load_file(self.path)
            problems: list[str] = []
        except MappingFileError as exc:
            problems = [str(problem) for problem in exc.problems]
        errors = [error.message for error in self.validator.iter_errors(data)]
        return not problems, errors, problems


def test_every_table_of_the_repository_is_found() -> None:
    names = set(TABLES)
    assert {
        "mappings/gb-dc-charger.yaml",
        "mappings/gb-ac-charger.yaml",
        "mappings/example-dialin-card.yaml",
    } <= names
    assert "mappings/ocpp16-config.yaml" not in names  # no IEC 104 table
    assert sum(name.startswith("docs/mapping-language.md:") for name in names) >= 5


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_schema_accepts_exactly_what_validate_accepts(
    name: str, validator: jsonschema.Draft202012Validator, tmp_path: Path
) -> None:
    text = TABLES[name]
    path = tmp_path / "table.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_file(path)
        valid = True
    except MappingFileError:
        valid = False
    errors = [error.message for error in validator.iter_errors(load_yaml(text))]
    assert valid == (errors == []), (name, valid, errors)


MAX_DEPTH = 5  # of the keys changed
MAX_CHILDREN = 2  # changed per mapping below the top (the first ones): a shipped table has hundreds


def _places(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Mapping keys' paths, depth first, bounded by MAX_DEPTH and MAX_CHILDREN (a list's first item
    counts as a mapping of the list)."""
    if len(prefix) >= MAX_DEPTH:
        return
    if isinstance(data, dict):
        for key, value in list(data.items())[: MAX_CHILDREN if prefix else None]:
            yield (*prefix, key)
            yield from _places(value, (*prefix, key))
    elif isinstance(data, list) and data:
        yield from _places(data[0], (*prefix, 0))


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@pytest.mark.parametrize(
    "name", sorted(name for name in TABLES if name.startswith(("mappings/", "docs/")))
)
def test_the_schema_is_never_stricter_than_validate_key_by_key(
    name: str, validator: jsonschema.Draft202012Validator, tmp_path: Path
) -> None:
    data = load_yaml(TABLES[name])
    verdicts = Verdicts(validator, tmp_path)
    valid, _, _ = verdicts.of(data)
    if not valid:
        pytest.skip("a table broken on purpose (the docs show its problems)")
    stricter: list[str] = []
    missed: list[str] = []
    for place in _places(data):
        parent = _at(data, place[:-1])
        if not isinstance(parent, dict):
            continue
        removed = copy.deepcopy(data)
        del _at(removed, place[:-1])[place[-1]]
        ok, errors, _ = verdicts.of(removed)
        if ok and errors:
            stricter.append(f"without {place}: {errors[:2]}")
        unknown = copy.deepcopy(data)
        _at(unknown, place[:-1])["no_such_key"] = 1
        ok, errors, problems = verdicts.of(unknown)
        if ok and errors:
            stricter.append(f"no_such_key beside {place}: {errors[:2]}")
        if not ok and not errors:
            missed.append(f"no_such_key beside {place}: {problems[:1]}")
        if isinstance(parent[place[-1]], dict):
            number = copy.deepcopy(data)
            _at(number, place[:-1])[place[-1]] = 0.5
            ok, errors, problems = verdicts.of(number)
            if ok and errors:
                stricter.append(f"{place} = 0.5: {errors[:2]}")
            if not ok and not errors:
                missed.append(f"{place} = 0.5: {problems[:1]}")
    assert stricter == [], stricter
    assert missed == [], missed
