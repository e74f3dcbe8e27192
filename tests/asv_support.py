"""Running the asv suite from tests: a throw-away config, machine file and results folder.

The smoke run (``XBACKEND_ASV_GRID=smoke``, ``asv run --python=same --quick``)
is taken once per pytest process and shared by ``test_asv_suite`` and
``test_dashboard``. Results are saved (``--set-commit-hash HEAD``) so the
dashboard test can publish them; none of it touches ``~/.asv-machine.json`` or
the repository's ``.asv/``.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from asv_config import write_config  # noqa: E402

ASV = [sys.executable, "-m", "asv"]
MACHINE = "ci-smoke"
SMOKE_TIMEOUT_S = 900


@dataclass(frozen=True)
class AsvRun:
    returncode: int
    output: str


@dataclass(frozen=True)
class Workspace:
    """A temporary HOME (machine file), config and results/html folders."""

    root: Path
    config: Path
    env: dict[str, str]

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def html(self) -> Path:
        return self.root / "html"

    def asv(self, *args: str, timeout: float = SMOKE_TIMEOUT_S) -> AsvRun:
        proc = subprocess.run(
            [*ASV, *args, "--config", str(self.config)],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return AsvRun(proc.returncode, proc.stdout + proc.stderr)


def current_branch() -> str:
    """The checked-out branch (publish plots only commits on the config's branches); main when detached."""
    branch = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    return "main" if branch == "HEAD" else branch


def make_workspace(benchmark_dir: Path = REPO / "benchmarks" / "benchmarks", grid: str = "smoke") -> Workspace:
    root = Path(tempfile.mkdtemp(prefix="xbackend-asv-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    write_config(
        root / "asv.conf.json",
        branches=[current_branch()],
        benchmark_dir=str(benchmark_dir),
        env_dir=str(root / "env"),
        results_dir=str(root / "results"),
        html_dir=str(root / "html"),
    )
    home = root / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XBACKEND_ASV_GRID": grid}
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "asv_machine.py"), MACHINE],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return Workspace(root, root / "asv.conf.json", env)


@functools.cache
def smoke_run() -> tuple[Workspace, AsvRun]:
    """Every benchmark of the smoke grid once, results saved for HEAD."""
    workspace = make_workspace()
    run = workspace.asv(
        "run", "--python=same", "--quick", "--show-stderr", "--set-commit-hash", "HEAD", "--machine", MACHINE
    )
    return workspace, run


def saved_results(workspace: Workspace) -> dict:
    """The one result file the smoke run saved."""
    (path,) = [p for p in (workspace.results / MACHINE).glob("*.json") if p.name != "machine.json"]
    return json.loads(path.read_text())
