"""Show the regression gate catching a planted slowdown and staying quiet on a commit that changes nothing.

    python benchmarks/gate_demo.py [--machine NAME] [--out docs/results/gate-demo.txt]

Works in a scratch clone of this repository's HEAD; this checkout is not touched.
On top of HEAD it makes two throwaway commits:

- ``slowed``: the ``numpy`` strategy computes ``(a * b).sum(0)`` instead of
  ``np.einsum`` (an N x K temporary written and read back);
- ``unchanged``: the numpy backend's docstring edited, so the code measured is the same.

Then it runs ``benchmarks/gate.py HEAD <commit>`` on numpy's square and latency
cells for each, and checks that ``slowed`` exits 1 naming the square cell and
``unchanged`` exits 0. The transcript (commands, asv's tables, verdicts, seconds)
is written to ``--out``. Exit status 0 when the gate behaved, 1 when it did not.
The scratch clone borrows this checkout's asv environment (``.asv/env``) when it
exists, so only the two commits are built; do not run asv here at the same time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from asv_machine import check_recorded, machine_name  # noqa: E402

NUMPY_BACKEND = Path("xbackend/backends/numpy.py")
FAST_LINE = 'return np.asarray(np.einsum("i...,i...->...", a, b))'
SLOW_LINE = "return np.asarray((a * b).sum(0))"
SLOWED_CELL = "time_mul_sum('numpy', 'cpu', 'square', 'float32')"
GATE_ARGS = ["--adapters", "numpy", "--classes", "square,latency"]


def git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True, text=True).stdout.strip()


def throwaway_commit(clone: Path, branch: str, base: str, path: Path, old: str, new: str, message: str) -> str:
    git(clone, "checkout", "--quiet", "-B", branch, base)
    source = (clone / path).read_text()
    if source.count(old) != 1:
        raise SystemExit(f"gate_demo: {path} no longer has exactly one {old!r}; update the demo")
    (clone / path).write_text(source.replace(old, new))
    git(clone, "-c", "user.name=gate-demo", "-c", "user.email=gate-demo@localhost", "commit", "--quiet", "-am", message)
    return git(clone, "rev-parse", "--short=8", "HEAD")


def scratch_clone(workdir: Path) -> Path:
    clone = workdir / "xbackend"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    if (REPO / ".asv" / "env").is_dir():
        (clone / ".asv").mkdir()
        (clone / ".asv" / "env").symlink_to(REPO / ".asv" / "env")
    return clone


def run_gate(clone: Path, base: str, head: str, machine: str | None, log: list[str]) -> tuple[int, str]:
    command = [sys.executable, "benchmarks/gate.py", base, head, *GATE_ARGS]
    command += ["--machine", machine] if machine else []
    log.append(f"$ python {' '.join(command[1:])}")
    started = time.perf_counter()
    process = subprocess.run(
        command, cwd=clone, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    output = process.stdout + process.stderr
    log += [essentials(output), f"[exit {process.returncode} after {time.perf_counter() - started:.0f} s]", ""]
    return process.returncode, output


# What a reader of the transcript needs: the commands, asv's comparison tables and
# verdicts, and the gate's summary; not asv's progress lines or its per-run table of
# every parameter set (thousands of n/a rows).
_KEPT = re.compile(
    r"^(\$ |\||Benchmarks that|All benchmarks|SOME BENCHMARKS|PERFORMANCE|BENCHMARKS NOT|gate:|  \w|    \|)"
)


def essentials(output: str) -> str:
    return "\n".join(line.rstrip() for line in output.splitlines() if _KEPT.match(line))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--machine", type=machine_name, default=None, help="asv machine name (see benchmarks/asv_machine.py)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "gate-demo.txt")
    args = parser.parse_args(argv)
    if args.out.is_dir() or not args.out.name:  # found out only after the half-hour demo otherwise
        parser.error(f"--out {args.out}: name a file, not a folder")
    try:
        check_recorded(args.machine)
    except ValueError as exc:
        parser.error(str(exc))
    started = time.perf_counter()
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="xbackend-gate-demo-") as workdir:
        clone = scratch_clone(Path(workdir))
        base = git(clone, "rev-parse", "--short=8", "HEAD")
        slowed = throwaway_commit(
            clone, "slowed", base, NUMPY_BACKEND, FAST_LINE, SLOW_LINE, "throwaway: numpy via (a*b).sum(0)"
        )
        unchanged = throwaway_commit(
            clone,
            "unchanged",
            base,
            NUMPY_BACKEND,
            '"""NumPy:',
            '"""NumPy (docstring edited):',
            "throwaway: a docstring edited",
        )
        log.append(
            f"base {base}; slowed {slowed} (numpy strategy: {SLOW_LINE}); unchanged {unchanged} (a docstring edited)\n"
        )
        slowed_exit, slowed_output = run_gate(clone, base, slowed, args.machine, log)
        unchanged_exit, _ = run_gate(clone, base, unchanged, args.machine, log)
    caught = slowed_exit == 1 and SLOWED_CELL in slowed_output.split("\ngate:", 1)[-1]
    verdict = "behaved" if caught and unchanged_exit == 0 else "did NOT behave"
    log.append(
        f"gate {verdict}: slowed exit {slowed_exit} ({'names' if caught else 'does not name'} the square cell), "
        f"unchanged exit {unchanged_exit}; {time.perf_counter() - started:.0f} s in all"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(log) + "\n")
    print(log[-1])
    return 0 if verdict == "behaved" else 1


if __name__ == "__main__":
    sys.exit(main())
