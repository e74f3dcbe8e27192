"""Record the performance history: the history grid of a commit range, built and measured by asv.

    python benchmarks/history.py [--machine NAME] [--rounds N] [RANGE] [-- ASV RUN OPTIONS]
    python benchmarks/history.py --existing [--machine NAME]   # this commit, in this Python
    ... [--kinds track,time]                                 # which benchmarks (default both)

RANGE is a git range as ``asv run`` takes it (default: ``FIRST_MEASURABLE..main``,
every commit of main that has the measurement API the suite calls). Commits that
already have results on this machine are skipped (``--skip-existing-commits``),
so the same command refreshes the history incrementally as commits land.

The history grid (``benchmarks.common.HISTORY_ADAPTERS`` x every shape class x
float32, on the CPU and, where ``nvidia-smi`` finds one, the GPU) is a selection of the full
grid, so these results carry the full grid's benchmark versions and sit beside
full-grid runs on the dashboard. The selection reaches both the benchmarks
(``-b``) and the shared measurement of the ``track_`` figures
(``XBACKEND_ASV_MEASURE_ONLY``), which measures on the quick budget.

With ``--existing`` each kind of benchmark is its own ``asv run``, the ``track_``
figures first: asv saves a commit's results only when its run ends, so a run
stopped by a time limit (a GPU lease) still keeps the kinds that finished.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from asv_machine import check_recorded, machine_name  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BUDGET_VARIABLE,
    DEVICES,
    HISTORY_KINDS,
    MEASURE_ONLY_VARIABLE,
    history_benchmark_regexes,
    history_regex,
)

# The first commit of main whose xbackend.measure has ``synchronized_call`` and
# ``measure_grid``: the suite skips every cell of an older commit (timing it
# another way would be measuring something else), so recording those is wasted time.
FIRST_MEASURABLE = "a3f046d"


# One process per cell and round, sampling for a quarter of a second: a commit's
# history grid then takes a few minutes on 2 cores, most of it process starts.
SAMPLING = ["-a", "repeat=(3,25,0.25)", "-a", "warmup_time=0.1"]


def machine_devices() -> tuple[str, ...]:
    """The grid's devices this machine has: the GPU cells only where ``nvidia-smi`` finds one."""
    return DEVICES if shutil.which("nvidia-smi") else ("cpu",)


def _subset(text: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """The names in ``text``, in the order of ``choices``: ``--kinds time,track`` still records the track figures
    first, so a run stopped by a time limit keeps them."""
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if not chosen or set(chosen) - set(choices):
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated subset of {', '.join(choices)}")
    if twice := sorted({name for name in chosen if chosen.count(name) > 1}):
        # Each kind is its own asv run with --existing: a repeated one would be measured and recorded twice.
        raise argparse.ArgumentTypeError(f"{text!r}: {', '.join(twice)} named twice; name each at most once")
    return tuple(name for name in choices if name in chosen)


def _devices(text: str) -> tuple[str, ...]:
    return _subset(text, DEVICES)


def _kinds(text: str) -> tuple[str, ...]:
    return _subset(text, HISTORY_KINDS)


# asv's own range words, which git does not know.
ASV_RANGES = ("NEW", "ALL", "EXISTING")


def check_range(commits: str) -> None:
    """ValueError unless git finds commits in ``commits``: asv would otherwise fail deep in its run, or measure nothing."""
    if commits in ASV_RANGES or commits.startswith("HASHFILE:"):
        return
    if not commits.strip() or commits.startswith("-"):
        raise ValueError(f"commit range {commits!r}: give a git range such as {FIRST_MEASURABLE}^..main")
    found = subprocess.run(
        ["git", "rev-list", "--max-count=1", commits, "--"], cwd=REPO, capture_output=True, text=True
    )
    if found.returncode != 0:
        why = (found.stderr.strip().splitlines() or ["git rev-list failed"])[0]
        raise ValueError(f"commit range {commits!r}: {why}")
    if not found.stdout.strip():
        raise ValueError(f"commit range {commits!r} holds no commit")


def asv_run_command(
    machine: str | None,
    rounds: int,
    devices: tuple[str, ...],
    commits: str | None,
    extra: list[str],
    kinds: tuple[str, ...] = HISTORY_KINDS,
) -> list[str]:
    """``asv run`` of the history grid's ``kinds``: over ``commits``, or (None) in this Python for the checked-out commit."""
    command = [sys.executable, "-m", "asv", "run", "--show-stderr"]
    for regex in history_benchmark_regexes(devices, kinds):
        command += ["-b", regex]
    command += ["-a", f"rounds={rounds}", *SAMPLING]
    if machine:
        command += ["--machine", machine]
    if commits is None:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True)
        return command + ["-E", f"existing:{sys.executable}", "--set-commit-hash", head.stdout.strip(), *extra]
    return command + ["--skip-existing-commits", *extra, commits]


def history_environment(devices: tuple[str, ...]) -> dict[str, str]:
    return {**os.environ, MEASURE_ONLY_VARIABLE: history_regex(devices), BUDGET_VARIABLE: "quick"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="?", default=None, help=f"git range (default: {FIRST_MEASURABLE}^..main)")
    parser.add_argument(
        "--machine", type=machine_name, default=None, help="asv machine name (see benchmarks/asv_machine.py)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="asv rounds per time_ benchmark (default: %(default)s)")
    parser.add_argument(
        "--existing",
        action="store_true",
        help="measure the checked-out commit in this Python's packages (a machine with no network: the GPU pass)",
    )
    parser.add_argument(
        "--devices",
        type=_devices,
        default=None,
        help=f"comma-separated subset of {','.join(DEVICES)} (default: cuda too where nvidia-smi finds a GPU)",
    )
    parser.add_argument(
        "--kinds",
        type=_kinds,
        default=HISTORY_KINDS,
        help=f"comma-separated subset of {','.join(HISTORY_KINDS)}: the benchmarks recorded (default: both)",
    )
    args = parser.parse_args(own)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    if args.existing and args.commits is not None:
        parser.error("--existing measures the checked-out commit: give no commit range")
    devices = args.devices or machine_devices()
    commits = None if args.existing else (f"{FIRST_MEASURABLE}^..main" if args.commits is None else args.commits)
    try:
        check_recorded(args.machine)
        if commits is not None:
            check_range(commits)
    except ValueError as exc:
        parser.error(str(exc))
    # One asv run per kind where each must save on its own; a commit range is one
    # run, since --skip-existing-commits would skip every commit after the first kind.
    runs = [(kind,) for kind in args.kinds] if args.existing else [args.kinds]
    status = 0
    for kinds in runs:
        command = asv_run_command(args.machine, args.rounds, devices, commits, extra, kinds)
        print("$", " ".join(command), flush=True)
        returncode = subprocess.run(command, cwd=REPO, env=history_environment(devices)).returncode
        status = status or returncode  # a failed kind does not stop the next one
    return status


if __name__ == "__main__":
    sys.exit(main())
