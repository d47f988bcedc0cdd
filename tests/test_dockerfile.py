"""The Dockerfile's invariants (issue 7, part 2). CI has no Docker engine, so the file itself is checked.

- The base is a slim CPython ≥ 3.11 image with a pinned tag (c104 has wheels for it), in every stage.
- Multi-stage: the project is installed with the same pip command the Makefile (CI) runs, into a venv
  that the final stage copies; the build context (.dockerignore) holds everything `pip install .` needs.
- The final stage runs as a fixed non-root user, keeps config and store on volumes, exposes the charger
  and health ports, checks /health with Python (no curl in slim), stops on SIGTERM and has the
  `ocpp-bridge` console script as its entry point.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage: comments dropped, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before any FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def pip_installs(commands: str) -> list[list[str]]:
    """The arguments of every `pip install` in a shell text (a RUN line or a Makefile)."""
    found = []
    lines = [line for line in commands.splitlines() if "pip install" in line]
    for command in re.split(r"&&|;", " && ".join(lines)):
        words = shlex.split(command)
        for index in range(len(words) - 1):
            if words[index].endswith("pip") and words[index + 1] == "install":
                found.append(words[index + 2 :])
    return found


def make_recipe(target: str) -> str:
    """The recipe lines of one Makefile target (the environment `make test` and `make demo` build)."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line)
    return "\n".join(recipe)


def install_targets(arguments: list[str]) -> set[str]:
    """What a pip install installs, flags and extras stripped: '.' is the project itself."""
    return {re.sub(r"\[.*\]$", "", a) for a in arguments if not a.startswith("-")}


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_every_stage_is_a_pinned_slim_cpython_3_11_or_newer(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    for stage in stages:
        match = re.fullmatch(r"python:3\.(\d+)(?:\.\d+)?-slim-(bookworm|trixie)", stage.image)
        assert match, f"{stage.image}: want python:3.X-slim-<debian release>, a pinned tag"
        assert int(match.group(1)) >= 11


def test_the_builder_installs_the_project_as_ci_does(stages: list[Stage], final: Stage) -> None:
    builder = next(stage for stage in stages if stage.name == "builder")
    runs = "\n".join(builder.all("RUN"))
    docker_installs = pip_installs(runs)
    make_installs = pip_installs(make_recipe("$(STAMP)"))
    assert docker_installs and make_installs
    # Both upgrade pip first and install the project from the repository root; the image takes the
    # dependencies from the hash-locked requirements.lock first (issue 18 item 10) and resolves
    # nothing when it installs the project.
    upgrade, locked, project = docker_installs
    assert install_targets(upgrade) == install_targets(make_installs[0]) == {"pip"}
    assert "--upgrade" in upgrade
    assert locked[locked.index("-r") + 1] == "requirements.lock"
    assert "--require-hashes" in locked
    assert install_targets(project) == install_targets(make_installs[-1]) == {"."}
    assert "--no-deps" in project
    assert "-e" not in project, "the image installs the project, not a link to it"
    venv = re.search(r"python -m venv (\S+)", runs)
    assert venv, "the builder installs into a virtual environment"
    assert any(args.startswith(f"--from=builder {venv.group(1)} ") for args in final.all("COPY")), (
        "the final stage copies the builder's venv"
    )
    assert f"{venv.group(1)}/bin" in (final.last("ENV") or "")


def test_the_build_context_holds_what_pip_install_needs(stages: list[Stage]) -> None:
    builder = next(stage for stage in stages if stage.name == "builder")
    copied = {
        source.rstrip("/")
        for args in builder.all("COPY")
        if not args.startswith("--")
        for source in args.split()[:-1]
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {
        "pyproject.toml",
        "requirements.lock",
        project["project"]["readme"],
        *project["project"]["license-files"],
    }
    for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        needed.add(pattern.rstrip("*"))
    assert needed <= copied
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore, ".dockerignore lists what goes in, everything else stays out"
    for name in needed:
        assert (ROOT / name).exists()
        assert f"!{name}" in ignore, f".dockerignore leaves {name} out of the build context"


def test_the_final_stage_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None
    name = user.split(":")[0]
    assert name not in ("root", "0")
    runs = " ".join(final.all("RUN"))
    assert re.search(rf"useradd .*--uid 10001 .*\b{name}\b", runs), "a fixed uid, 10001"
    assert final.last("WORKDIR") == "/var/lib/ocpp-bridge"


def test_config_and_store_are_volumes_and_the_ports_are_exposed(final: Stage) -> None:
    volumes = {v for args in final.all("VOLUME") for v in exec_form(args)}
    assert {"/etc/ocpp-bridge", "/var/lib/ocpp-bridge"} <= volumes
    exposed = {port for args in final.all("EXPOSE") for port in args.split()}
    assert {"9100", "8409"} <= exposed


def test_the_healthcheck_asks_the_configured_health_with_python(final: Stage) -> None:
    check = final.last("HEALTHCHECK")
    assert check is not None
    command = exec_form(check[check.index("CMD") + 3 :].strip())
    # the configured [bridge] health, not a fixed port (issue 18 item 10): adapters/ops/healthcheck.py
    assert command == ["python", "-m", "adapters.ops.healthcheck", "/etc/ocpp-bridge/bridge.toml"]
    assert command[-1] == exec_form(final.last("CMD") or "null")[-1]
    timeout = re.search(r"--timeout=(\d+)s", check)
    assert timeout and int(timeout.group(1)) > 3, "longer than the check's own 3 s"


def test_the_documented_stop_grace_outlasts_shutdown_timeout() -> None:
    guide = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")
    shutdown_timeout = 10  # the default; the guide's configuration keeps it
    run = re.search(r"--stop-timeout (\d+)", guide)
    compose = re.search(r"stop_grace_period: (\d+)s", guide)
    assert run and compose
    assert int(run.group(1)) > shutdown_timeout
    assert int(compose.group(1)) > shutdown_timeout
    assert "stop_signal: SIGTERM" in guide


def test_sigterm_stops_the_entry_point_ocpp_bridge(final: Stage) -> None:
    assert final.last("STOPSIGNAL") in (None, "SIGTERM")
    # The exec form: the bridge is PID 1 and receives the signal itself, not a shell.
    assert exec_form(final.last("ENTRYPOINT") or "null") == ["ocpp-bridge"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ocpp-bridge" in project["project"]["scripts"]
    assert exec_form(final.last("CMD") or "null") == [
        "run",
        "--config",
        "/etc/ocpp-bridge/bridge.toml",
    ]


def test_the_parser_joins_continuations_and_skips_comments() -> None:
    stages = parse_dockerfile(
        "# top\nFROM python:3.12-slim-bookworm AS b\nRUN a \\\n  # inside\n  && b\nUSER x\n"
    )
    assert stages[0].name == "b"
    assert stages[0].instructions == [("RUN", "a && b"), ("USER", "x")]


def test_the_container_configuration_in_the_operating_guide_is_valid(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")
    section = guide.split("### A configuration for a container", 1)[1]
    blocks = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)
    assert blocks
    path = tmp_path / "bridge.toml"
    path.write_text(
        blocks[0], encoding="utf-8"
    )  # the section's own (others come later in the guide)
    config = load_config(path, {"OCPP_BRIDGE_CSMS__PASSWORD": "s" * 20})
    # What the image relies on: the store in the store volume (a relative path would count from the
    # read-only /etc/ocpp-bridge), the health check's
    # port, chargers reachable from outside the container.
    assert config.bridge.store == "/var/lib/ocpp-bridge/bridge.db"
    assert config.bridge.health == "127.0.0.1:8409"
    assert config.south.listen == "0.0.0.0:9100"
