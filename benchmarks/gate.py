"""The regression gate: ``asv continuous`` per group of shape classes, each with the factor its noise allows.

    python benchmarks/gate.py BASE HEAD [--machine NAME] [--adapters A,B] [--classes C,D] [-- ASV OPTIONS]

Exit status: 0 when no cell got slower than its group's factor, 1 when one did
(the cells are named), 2 when asv itself failed (a build, a benchmark error).

Why groups: on this project's shared 2-vCPU VMs the level of a cell moves from one
process to the next (CPU placement, frequency, a neighbour's load). A microsecond
cell (latency, 3 x 4) measures mostly Python and dispatch overhead and has moved by
1.75x between two builds of the same code: one factor for every cell cries wolf
there or misses 20% regressions on the bandwidth cells. Each group runs with its
own factor and enough interleaved rounds (processes) for the process-to-process
spread to show up in the Mann-Whitney test rather than look like a change.

Only ``TimeMulSum.time_mul_sum`` is gated. asv compares ``track_`` figures by the
factor alone and takes a larger value as worse, which is wrong for GB/s and the
fraction of the floor; they stay on the dashboard.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from asv_machine import check_recorded, machine_name  # noqa: E402
from benchmarks.common import DEVICES, FULL_SHAPE_CLASSES, HISTORY_ADAPTERS, cells_regex  # noqa: E402

GATED_BENCHMARK = r"TimeMulSum\.time_mul_sum"
GATED_DTYPES = ("float32",)


@dataclass(frozen=True)
class GateGroup:
    """Shape classes gated together: ``asv continuous --factor factor -a rounds=rounds``."""

    name: str
    shape_classes: tuple[str, ...]
    factor: float
    rounds: int


GATE_GROUPS = (
    # Streaming reads of 64-128 MB: a process's level moves by 10-20% on a shared VM.
    GateGroup("bandwidth", ("square", "tall-skinny", "short-wide", "column"), factor=1.25, rounds=4),
    # A few microseconds of Python per call: levels move by up to 2x between processes.
    GateGroup("latency", ("latency",), factor=2.0, rounds=8),
)
# asv continuous prints GitHub-style tables and marks a cell that got slower with
# "+", one that started failing with "!", in the first column.
_WORSE_ROW = re.compile(r"^\|\s*[+!]\s*\|.*$", re.M)


@dataclass(frozen=True)
class GroupVerdict:
    """One group's ``asv continuous``: its exit status, every row it marked worse, and those of this group's cells.

    asv compares every result the two commits have, those an earlier group
    recorded included, each by this group's factor: only this group's own rows
    count for its verdict (the others were judged by their own group).
    """

    group: GateGroup
    returncode: int
    worse_rows: tuple[str, ...]
    regressions: tuple[str, ...]
    seconds: float

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def failed(self) -> bool:
        """asv exited non-zero without marking anything worse: a build or benchmark error."""
        return self.returncode != 0 and not self.worse_rows


def continuous_command(
    group: GateGroup,
    base: str,
    head: str,
    adapters: tuple[str, ...],
    classes: tuple[str, ...],
    machine: str | None,
    extra: list[str],
) -> list[str]:
    command = [sys.executable, "-m", "asv", "continuous", "--factor", str(group.factor), "--interleave-rounds"]
    command += ["-a", f"rounds={group.rounds}", "--split", "--show-stderr", "-b", gated_regex(adapters, classes)]
    if machine:
        command += ["--machine", machine]
    return command + extra + [base, head]


def gated_regex(adapters: tuple[str, ...], classes: tuple[str, ...]) -> str:
    return GATED_BENCHMARK + cells_regex(adapters, DEVICES, classes, GATED_DTYPES)


def run_group(command: list[str], group: GateGroup, own_cells: str) -> GroupVerdict:
    print(f"$ {' '.join(command)}", flush=True)
    started = time.perf_counter()
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    sys.stdout.write(process.stdout)
    sys.stderr.write(process.stderr)
    worse = tuple(" ".join(row.split()) for row in _WORSE_ROW.findall(process.stdout))
    own = tuple(row for row in worse if re.search(own_cells, row))
    return GroupVerdict(group, process.returncode, worse, own, seconds)


def check_commit(revision: str, what: str) -> None:
    """ValueError unless git names one commit by ``revision`` (asv would fail only after building the other one)."""
    found = None
    if revision.strip() and not revision.startswith("-"):
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd=REPO, capture_output=True
        )
    if found is None or found.returncode != 0:
        raise ValueError(f"{what} {revision!r} is not a commit of this repository")


def _names(text: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(known))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: {what} must be a comma-separated subset of {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare against, e.g. main")
    parser.add_argument("head", help="the commit under test, e.g. HEAD")
    parser.add_argument(
        "--machine", type=machine_name, default=None, help="asv machine name (see benchmarks/asv_machine.py)"
    )
    parser.add_argument(
        "--adapters",
        type=lambda text: _names(text, HISTORY_ADAPTERS, "--adapters"),
        default=HISTORY_ADAPTERS,
        help="gated adapters (default: the history grid's)",
    )
    parser.add_argument(
        "--classes",
        type=lambda text: _names(text, FULL_SHAPE_CLASSES, "--classes"),
        default=FULL_SHAPE_CLASSES,
        help="gated shape classes (default: all)",
    )
    args = parser.parse_args(own)
    try:
        check_commit(args.base, "BASE")
        check_commit(args.head, "HEAD")
        check_recorded(args.machine)
    except ValueError as exc:
        parser.error(str(exc))
    verdicts = []
    for group in GATE_GROUPS:
        classes = tuple(c for c in group.shape_classes if c in args.classes)
        if classes:
            command = continuous_command(group, args.base, args.head, args.adapters, classes, args.machine, extra)
            verdicts.append(run_group(command, group, gated_regex(args.adapters, classes)))
    return report(verdicts)


def report(verdicts: list[GroupVerdict]) -> int:
    print("\ngate:")
    status = 0
    for verdict in verdicts:
        group = verdict.group
        if verdict.regressed:
            outcome, status = f"SLOWER by more than {group.factor}x", max(status, 1)
        elif verdict.failed:
            outcome, status = f"asv failed (exit {verdict.returncode})", 2
        else:
            outcome = f"no cell slower by more than {group.factor}x"
        print(
            f"  {group.name} ({', '.join(group.shape_classes)}; {group.rounds} rounds): {outcome} [{verdict.seconds:.0f} s]"
        )
        for row in verdict.regressions:
            print(f"    {row}")
    return status


if __name__ == "__main__":
    sys.exit(main())
