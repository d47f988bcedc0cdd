"""requirements.lock, which the container image installs from (issue 18 item 10), matches pyproject.toml:
every dependency pinned with hashes at a version its specifier allows, exactly pyproject's dependencies
as the direct ones, and nothing unpinned. No network: `make lock` refreshes the file."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DIRECT = "ocpp-bridge (pyproject.toml)"


@dataclass
class Pin:
    name: str
    version: str
    marker: str | None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in text.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and current is None):
            continue
        if not line.startswith(" "):
            requirement, _, rest = stripped.partition(" --hash")
            requirement = requirement.strip()
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;\s*(.+))?", requirement)
            assert match, f"not pinned exactly: {line}"
            current = Pin(canonicalize_name(match.group(1)), match.group(2), match.group(3))
            current.hashes = re.findall(r"sha256:[0-9a-f]{64}", rest)
            pins[current.name] = current
            continue
        assert current is not None
        comment = stripped.lstrip("#").strip()
        if comment.startswith("via"):
            comment = comment.removeprefix("via").strip()
        if comment:
            current.via.append(comment)
    return pins


def test_the_lock_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = {
        canonicalize_name(r.name): r for r in map(Requirement, project["project"]["dependencies"])
    }
    pins = parse_lock((ROOT / "requirements.lock").read_text(encoding="utf-8"))
    direct = {name for name, pin in pins.items() if DIRECT in pin.via}
    assert direct == set(wanted), "the lock's direct dependencies are exactly pyproject's"
    for name, requirement in wanted.items():
        pin = pins[name]
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{name}=={pin.version} does not satisfy {requirement}"
        )
        assert (pin.marker is None) == (requirement.marker is None), name
    for pin in pins.values():
        assert pin.hashes, f"{pin.name} has no hash (pip install --require-hashes needs one)"
        assert pin.via, f"{pin.name}: nothing needs it"


def test_the_parser_reads_pip_compile_output() -> None:
    pins = parse_lock(
        "#\n# make lock\n#\n"
        "a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via ocpp-bridge (pyproject.toml)\n"
        'b==2.0 ; sys_platform != "win32" \\\n    --hash=sha256:' + "1" * 64 + " \\\n"
        "    --hash=sha256:"
        + "2" * 64
        + "\n    # via\n    #   a\n    #   ocpp-bridge (pyproject.toml)\n"
    )
    assert pins["a"].version == "1.0" and pins["a"].via == [DIRECT]
    assert pins["b"].marker == 'sys_platform != "win32"'
    assert len(pins["b"].hashes) == 2 and pins["b"].via == ["a", DIRECT]
