"""bridge/ is the I/O-free core: no asyncio, sockets, files, clock or random ids (docs/architecture.md).

Scans every module's imports and a few calls; a new forbidden dependency fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bridge"

FORBIDDEN_MODULES = {
    "asyncio",
    "websockets",
    "c104",
    "socket",
    "ssl",
    "select",
    "selectors",
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "sqlite3",
    "threading",
    "multiprocessing",
    "subprocess",
    "time",
    "random",
    "secrets",
    "uuid",
    "urllib",
    "http",
    "logging",
    "structlog",
    "ruamel",
    "importlib",
    "adapters",
}
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}
FORBIDDEN_ATTRIBUTES = {"now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}

MODULES = sorted(CORE.rglob("*.py"))


def test_core_has_modules() -> None:
    assert len(MODULES) >= 8


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_pure(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"line {node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                problems.append(f"line {node.lineno}: calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_ATTRIBUTES:
                problems.append(f"line {node.lineno}: calls .{func.attr}() (a clock)")
    assert problems == []


def test_purity_check_catches_a_violation(tmp_path: Path) -> None:
    """The scanner itself must be able to fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom datetime import datetime\nx = datetime.now()\nopen('f')\n")
    with pytest.raises(AssertionError):
        test_core_module_is_pure(bad)
