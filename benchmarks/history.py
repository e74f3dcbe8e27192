"""Record the performance history: the history grid of a commit range, built and measured by asv.

    python benchmarks/history.py [--machine NAME] [--rounds N] [RANGE] [-- ASV RUN OPTIONS]

RANGE is a git range as ``asv run`` takes it (default: ``FIRST_MEASURABLE..main``,
every commit of main that has the measurement API the suite calls). Commits that
already have results on this machine are skipped (``--skip-existing-commits``),
so the same command refreshes the history incrementally as commits land.

The history grid (``benchmarks.common.HISTORY_ADAPTERS`` x every shape class x
float32, on the CPU and, where present, the GPU) is a selection of the full
grid, so these results carry the full grid's benchmark versions and sit beside
full-grid runs on the dashboard. The selection reaches both the benchmarks
(``-b``) and the shared measurement of the ``track_`` figures
(``XBACKEND_ASV_MEASURE_ONLY``), which measures on the quick budget.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from benchmarks.common import BUDGET_VARIABLE, MEASURE_ONLY_VARIABLE, history_regex  # noqa: E402

# The first commit of main whose xbackend.measure has ``synchronized_call`` and
# ``measure_grid``: the suite skips every cell of an older commit (timing it
# another way would be measuring something else), so recording those is wasted time.
FIRST_MEASURABLE = "a3f046d"


def asv_run_command(machine: str | None, rounds: int, commits: str, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "asv", "run", "--skip-existing-commits", "--show-stderr"]
    command += ["-b", history_regex(), "-a", f"rounds={rounds}"]
    if machine:
        command += ["--machine", machine]
    return command + extra + [commits]


def history_environment() -> dict[str, str]:
    return {**os.environ, MEASURE_ONLY_VARIABLE: history_regex(), BUDGET_VARIABLE: "quick"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "commits", nargs="?", default=f"{FIRST_MEASURABLE}^..main", help="git range (default: %(default)s)"
    )
    parser.add_argument("--machine", default=None, help="asv machine name (see benchmarks/asv_machine.py)")
    parser.add_argument("--rounds", type=int, default=2, help="asv rounds per time_ benchmark (default: %(default)s)")
    args = parser.parse_args(own)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    command = asv_run_command(args.machine, args.rounds, args.commits, extra)
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, cwd=REPO, env=history_environment()).returncode


if __name__ == "__main__":
    sys.exit(main())
