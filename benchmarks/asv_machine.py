"""Record this machine for asv, GPU included: ``python benchmarks/asv_machine.py [NAME]``.

Without NAME the name is derived from the hardware (``hardware_name``): CPU
model name, family and model number, core count, memory and GPU, so that results measured on different
hardware never share a name. This project's VMs change CPU between sessions
(an AMD EPYC one day, an Intel Xeon with 2-3x another single-thread memory
bandwidth the next): one name for both would show false regressions.

``asv machine --yes --machine NAME`` (asv 0.6.6) stores only the name, not the CPU,
OS and memory, and asv has no fields for a GPU. This writes the full entry into
``~/.asv-machine.json`` with asv's own defaults plus ``gpu``, ``gpu_driver`` and
``cuda`` (from ``nvidia-smi``; "none" on a machine without one). Every key is
copied into each result and becomes a filter on the dashboard.

``--frameworks`` also records the installed numpy / torch / jax / cupy versions:
use it for runs in an existing environment (``asv run -E existing:...``), where
asv records no package versions of its own.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
from pathlib import Path

from asv.machine import Machine, MachineCollection


def gpu_info() -> dict[str, str]:
    """Name, driver and CUDA version of GPU 0 as ``nvidia-smi`` reports them."""
    if shutil.which("nvidia-smi") is None:
        return {"gpu": "none", "gpu_driver": "none", "cuda": "none"}
    query = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()[0]
    name, driver = (field.strip() for field in query.split(","))
    header = subprocess.run(["nvidia-smi"], check=True, capture_output=True, text=True).stdout
    # The header's "CUDA Version" is the newest CUDA this driver runs.
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return {"gpu": name, "gpu_driver": driver, "cuda": cuda.group(1) if cuda else "unknown"}


def cpu_id(cpuinfo: str | None = None) -> str:
    """``<family>.<model>`` of the CPU from ``/proc/cpuinfo``, or "unknown".

    VMs often report a generic model name ("Intel(R) Xeon(R) Processor") for
    CPU generations with different memory systems; family and model tell them apart.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown"
    family = re.search(r"^cpu family\s*:\s*(\d+)", cpuinfo, re.M)
    model = re.search(r"^model\s*:\s*(\d+)", cpuinfo, re.M)
    return f"{family.group(1)}.{model.group(1)}" if family and model else "unknown"


FRAMEWORK_DISTRIBUTIONS = ("numpy", "torch", "jax", "jaxlib", "cupy-cuda13x", "cupy-cuda12x", "cupy")


def framework_versions() -> dict[str, str]:
    """Installed versions of the benchmarked frameworks, read from package metadata (nothing is imported)."""
    versions = {}
    for dist in FRAMEWORK_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


# The fields of a machine entry that describe its hardware: results whose
# fields differ were not measured on the same machine (benchmarks/curate.py).
HARDWARE_FIELDS = ("arch", "cpu", "cpu_id", "num_cpu", "ram", "gpu")


def _slug(text: str) -> str:
    words = re.sub(r"\((R|TM)\)|\b(CPU|Processor|with|Radeon|Graphics)\b|@.*", " ", text, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")


def hardware_name(entry: dict[str, str]) -> str:
    """``cpu-<model>[-f<family>m<model id>]-<cores>c-<GiB>g``, with ``-<gpu model>`` on a GPU machine."""
    memory_gib = round(int(entry["ram"]) / 2**30) if str(entry.get("ram", "")).isdigit() else 0
    model = _slug(entry.get("cpu") or "unknown")
    family_model = entry.get("cpu_id", "unknown")
    if family_model not in ("", "unknown"):
        model += "-f{}m{}".format(*family_model.split("."))
    name = f"cpu-{model}-{entry.get('num_cpu', '0')}c-{memory_gib}g"
    gpu = entry.get("gpu", "none")
    return name if gpu in ("none", "", None) else f"{name}-{_slug(gpu)}"


def machine_name(name: str) -> str:
    """``name`` as an asv machine name: it becomes a folder of the results, so one plain path component."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or name != name.strip():
        raise argparse.ArgumentTypeError(
            f"machine name {name!r}: give a non-empty name without slashes or surrounding spaces "
            "(it becomes a folder of the results)"
        )
    return name


def recorded_machines(path: Path | None = None) -> dict[str, dict]:
    """The machines of ``~/.asv-machine.json`` (none when it is missing); ValueError naming a damaged file."""
    path = Path(MachineCollection.get_machine_file_path()) if path is None else path
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path} ({exc}): fix or remove it, then run benchmarks/asv_machine.py") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for k, v in document.items() if k != "version"):
        raise ValueError(f"{path} is not asv's machine file (an object of machines): fix or remove it")
    return {name: entry for name, entry in document.items() if name != "version"}


def check_recorded(name: str | None) -> None:
    """ValueError unless asv finds machine ``name`` (None: asv's default) without asking questions.

    An unknown name makes ``asv run``/``continuous`` ask about the machine on the
    terminal and record whatever is answered under that name: a typo would start
    a new, empty history.
    """
    machines = recorded_machines()
    known = ", ".join(sorted(machines)) or "none"
    if name is None:
        if len(machines) == 1 or platform.node() in machines:
            return
        raise ValueError(f"give --machine: asv cannot tell which recorded machine this is (recorded: {known})")
    if name not in machines:
        raise ValueError(
            f"--machine {name!r} is not recorded (recorded: {known}): run python benchmarks/asv_machine.py first"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "name",
        nargs="?",
        type=machine_name,
        default=None,
        help="machine name: the results folder and the dashboard's label (default: derived from the hardware)",
    )
    parser.add_argument("--frameworks", action="store_true", help="record the installed framework versions")
    args = parser.parse_args(argv)
    try:
        recorded_machines()  # a damaged file is named before asv's own reader fails on it
    except ValueError as exc:
        parser.error(str(exc))
    entry = {**Machine.get_defaults(), "cpu_id": cpu_id(), **gpu_info()}
    entry["machine"] = args.name or hardware_name(entry)
    if args.frameworks:
        entry.update(framework_versions())
    MachineCollection.save(entry["machine"], entry)
    for key, value in entry.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
