"""Copy one machine's asv results into the curated folder that feeds the dashboard.

    python benchmarks/curate.py MACHINE [--source .asv/results] [--dest benchmarks/results]

Local runs write to ``.asv/results`` (ignored by git); the published dashboard reads
only ``benchmarks/results`` (committed). This copies ``MACHINE/`` and the suite's
``benchmarks.json`` across, after checking what ``asv publish`` would otherwise
drop or mix up without a word:

- the results were taken with the full grid (a smoke grid run is never published);
- the suite that produced them is the one the curated folder already holds
  (asv publishes only results whose benchmark versions match ``benchmarks.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from asv_machine import HARDWARE_FIELDS, machine_name  # noqa: E402
from benchmarks.common import full_grid_params  # noqa: E402  (the suite's package)


class CurationError(Exception):
    pass


def read_object(path: Path) -> dict:
    """The JSON object in ``path``; CurationError naming the file when it is unreadable or not an object."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CurationError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict):
        raise CurationError(f"{path} is not a JSON object (found {type(document).__name__})")
    return document


def load_suite(results_dir: Path) -> dict[str, dict]:
    path = results_dir / "benchmarks.json"
    if not path.is_file():
        raise CurationError(f"{path} is missing: run asv (not --dry-run) so that it writes the suite description")
    suite = {name: b for name, b in read_object(path).items() if name != "version"}
    damaged = sorted(
        name for name, b in suite.items() if not (isinstance(b, dict) and {"params", "version"} <= b.keys())
    )
    if damaged:
        raise CurationError(f"{path} is not asv's suite description: {', '.join(damaged[:3])} lack 'params'/'version'")
    return suite


def check_full_grid(suite: dict[str, dict], source: Path) -> None:
    expected = full_grid_params()
    reduced = sorted(name for name, b in suite.items() if b["params"] != expected)
    if reduced:
        raise CurationError(
            f"{source} holds results of a reduced grid (XBACKEND_ASV_GRID set?) for "
            f"{', '.join(reduced[:3])}{' ...' if len(reduced) > 3 else ''}: only full-grid runs are published"
        )


def check_same_suite(suite: dict[str, dict], curated: dict[str, dict], dest: Path) -> None:
    changed = sorted(
        name for name in suite.keys() & curated.keys() if suite[name]["version"] != curated[name]["version"]
    )
    if changed:
        machines = sorted(p.name for p in dest.iterdir() if p.is_dir())
        raise CurationError(
            f"the benchmarks changed since {dest} was curated ({', '.join(changed[:3])}"
            f"{' ...' if len(changed) > 3 else ''}): asv publish would drop the older results of "
            f"{', '.join(machines)}; re-run those machines, or pass --replace-suite to accept that"
        )


def check_same_hardware(new: Path, curated: Path) -> None:
    """Refuse results whose hardware differs from the curated results of the same machine name."""
    if not curated.is_file():
        return
    old, now = read_object(curated), read_object(new)
    differ = [
        f"{key}: {old.get(key)!r} curated, {now.get(key)!r} new"
        for key in HARDWARE_FIELDS
        if old.get(key) != now.get(key)
    ]
    if differ:
        raise CurationError(
            f"results named {now.get('machine')!r} come from other hardware than the curated ones ("
            + "; ".join(differ)
            + "): record them under their own name (python benchmarks/asv_machine.py derives one)"
        )


def curate(machine: str, source: Path, dest: Path, replace_suite: bool = False) -> list[Path]:
    """Copy ``source/machine`` and the suite description into ``dest``; the files copied."""
    if not source.is_dir():
        raise CurationError(f"--source {source} is not a folder of asv results")
    if dest.exists() and not dest.is_dir():
        raise CurationError(f"--dest {dest} is not a folder")
    machine_dir = source / machine
    if not (machine_dir / "machine.json").is_file():
        known = sorted(p.name for p in source.iterdir() if (p / "machine.json").is_file()) if source.is_dir() else []
        raise CurationError(
            f"no results for machine {machine!r} in {source}; machines there: {', '.join(known) or 'none'}"
        )
    read_object(machine_dir / "machine.json")  # a damaged one is not published
    check_same_hardware(machine_dir / "machine.json", dest / machine / "machine.json")
    suite = load_suite(source)
    check_full_grid(suite, source)
    if (dest / "benchmarks.json").is_file() and not replace_suite:
        check_same_suite(suite, load_suite(dest), dest)
    copied = []
    (dest / machine).mkdir(parents=True, exist_ok=True)
    for path in sorted(machine_dir.glob("*.json")):
        copied.append(Path(shutil.copy2(path, dest / machine / path.name)))
    copied.append(Path(shutil.copy2(source / "benchmarks.json", dest / "benchmarks.json")))
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("machine", type=machine_name, help="the machine name given to asv (a folder of --source)")
    parser.add_argument("--source", type=Path, default=REPO / ".asv" / "results")
    parser.add_argument("--dest", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--replace-suite", action="store_true", help="accept a changed suite (older results drop out)")
    args = parser.parse_args(argv)
    try:
        copied = curate(args.machine, args.source, args.dest, args.replace_suite)
    except CurationError as exc:
        print(f"curate: {exc}", file=sys.stderr)
        return 1
    print(f"copied {len(copied)} files into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
