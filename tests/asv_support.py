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

from benchmarks import common  # noqa: E402

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


def make_workspace(
    benchmark_dir: Path = REPO / "benchmarks" / "benchmarks", grid: str = "smoke", measure_only: str = ""
) -> Workspace:
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
    env = {**os.environ, "HOME": str(home), "XBACKEND_ASV_GRID": grid, common.MEASURE_ONLY_VARIABLE: measure_only}
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "asv_machine.py"), MACHINE],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return Workspace(root, root / "asv.conf.json", env)


# asv starts a process per selected cell and benchmark (7 of them), even to skip it:
# the smoke run takes every adapter that xbackend has on the CPU with the small
# bandwidth case, and the latency case (the same code, with no GB/s) only for two
# probes. Cells that must skip, not fail, where they cannot run: the probes on CUDA
# without a GPU, and a GPU-only adapter on the CPU. Every adapter's latency cells
# doubled the run's ~3 minutes, and so did every adapter's CUDA cells before them.
# The GPU machine runs the suite through ``benchmarks/gpu_run.sh``.
SMOKE_PROBES = ("numpy", "torch-eager")
SMOKE_GPU_ONLY_PROBE = "cupy"


def smoke_cpu_adapters() -> tuple[str, ...]:
    """The suite's adapters that xbackend has on the CPU (available here or not: those that are not skip)."""
    from xbackend import adapters

    on_cpu = {info.name for info in adapters() if info.device == "cpu"}
    return tuple(name for name in common.ADAPTERS if name in on_cpu)


def smoke_cells_regex() -> str:
    """The smoke run's cells, as a parameter regex for asv's ``-b`` and ``XBACKEND_ASV_MEASURE_ONLY``."""
    dtypes = common.SMOKE_DTYPES
    small = common.cells_regex((*smoke_cpu_adapters(), SMOKE_GPU_ONLY_PROBE), ("cpu",), ("small",), dtypes)
    probes = common.cells_regex(SMOKE_PROBES, ("cpu", "cuda"), tuple(common.SMOKE_SHAPES), dtypes)
    return f"(?:{small}|{probes})"


@functools.cache
def smoke_run() -> tuple[Workspace, AsvRun]:
    """Every benchmark once on the smoke grid's CPU cells (and two adapters' CUDA cells), results saved for HEAD."""
    cells = smoke_cells_regex()
    workspace = make_workspace(measure_only=cells)
    run = workspace.asv(
        "run", "--python=same", "--quick", "--show-stderr", "--set-commit-hash", "HEAD", "--machine", MACHINE,
        "--bench", cells,
    )  # fmt: skip
    return workspace, run


def saved_results(workspace: Workspace) -> dict:
    """The one result file the smoke run saved."""
    (path,) = [p for p in (workspace.results / MACHINE).glob("*.json") if p.name != "machine.json"]
    return json.loads(path.read_text())
