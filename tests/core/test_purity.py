"""bridge/ is the I/O-free core: no asyncio, sockets, files, clock or random ids (docs/architecture.md).

Scans every module's imports and a few calls; a new forbidden dependency fails here, not in review.
Time enters the core only as arguments (`now` monotonic, `wall` since the epoch): a core that is handed
a clock to call (a `Callable[[], float]`, a parameter or attribute named like a clock holding a
callable, a call of something named `*clock*`/`*wall*`) fails too.
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
CLOCK_WORDS = ("clock", "wall")  # a name holding wall or monotonic time: a number, never a callable
NUMBERS = {"float", "int"}

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
            callee = _name(func)
            if callee is not None and _clockish(callee):
                problems.append(f"line {node.lineno}: calls {callee}() (an injected clock)")
        if _is_number_source(node):
            problems.append(f"line {node.lineno}: Callable[[], number] (a clock; pass the time in)")
        if (
            isinstance(node, ast.arg)
            and _clockish(node.arg)
            and _mentions_callable(node.annotation)
        ):
            problems.append(f"line {node.lineno}: parameter {node.arg} is a callable (a clock)")
        if (
            isinstance(node, ast.AnnAssign)
            and (target := _name(node.target)) is not None
            and _clockish(target)
            and _mentions_callable(node.annotation)
        ):
            problems.append(f"line {node.lineno}: {target} holds a callable (a clock)")
    assert problems == []


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _clockish(name: str) -> bool:
    return any(word in name.lower() for word in CLOCK_WORDS)


def _mentions_callable(annotation: ast.expr | None) -> bool:
    """A callable type, spelled out or through an alias named like a clock (`WallClock`)."""
    if annotation is None:
        return False
    text = ast.unparse(annotation)
    return "Callable" in text or "clock" in text.lower()


def _is_number_source(node: ast.AST) -> bool:
    """`Callable[[], float]` (or int): something called for a number with nothing to say, a clock."""
    if not (isinstance(node, ast.Subscript) and _name(node.value) == "Callable"):
        return False
    inner = node.slice
    if not (isinstance(inner, ast.Tuple) and len(inner.elts) == 2):
        return False
    args, result = inner.elts
    return isinstance(args, ast.List) and not args.elts and _name(result) in NUMBERS


def test_purity_check_catches_a_violation(tmp_path: Path) -> None:
    """The scanner itself must be able to fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom datetime import datetime\nx = datetime.now()\nopen('f')\n")
    with pytest.raises(AssertionError):
        test_core_module_is_pure(bad)


@pytest.mark.parametrize(
    "source",
    [
        # the shape this rule replaced: a wall clock handed to the constructor and called
        "from collections.abc import Callable\n"
        "WallClock = Callable[[], float]\n"
        "class Core:\n"
        "    def __init__(self, wall_clock: WallClock) -> None:\n"
        "        self._wall = wall_clock\n",
        "class Core:\n    def stamp(self) -> float:\n        return self._wall()\n",
        "def f(clock: 'Callable[[], str]') -> None: ...\n",
        "class Core:\n    clock: Callable[..., object]\n",
        "def f(now_of: Callable[[], int]) -> None: ...\n",
        "def f(wall_clock: WallClock) -> None: ...\n",
    ],
)
def test_purity_check_catches_an_injected_clock(tmp_path: Path, source: str) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    with pytest.raises(AssertionError):
        test_core_module_is_pure(bad)


def test_time_as_numbers_passes(tmp_path: Path) -> None:
    """What the cores do instead: `now` and `wall` arrive as floats with each input."""
    good = tmp_path / "good.py"
    good.write_text(
        "from collections.abc import Callable\n"
        "Ids = Callable[[], str]\n"
        "class Core:\n"
        "    def receive(self, data: str, now: float, wall: float) -> None:\n"
        "        self._wall = wall\n"
        "        self._deadline = now + 1.0\n"
    )
    test_core_module_is_pure(good)
