"""Write a copy of ``asv.conf.json`` with absolute paths and some keys replaced.

    python benchmarks/asv_config.py OUT.json results_dir=/abs/results html_dir=/abs/html matrix={}

For runs that must not write into the repository's ``.asv/`` (tests, the GPU
script). Values are JSON where they parse as JSON, else strings. ``repo`` and
``benchmark_dir`` become absolute, so the copy works from any folder (asv runs
from the config's folder).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from asv import util

REPO = Path(__file__).resolve().parent.parent


def derived_config(**overrides: Any) -> dict[str, Any]:
    config = util.load_json(str(REPO / "asv.conf.json"), js_comments=True)
    config.update(repo=str(REPO), benchmark_dir=str(REPO / config["benchmark_dir"]))
    config.update(overrides)
    return config


def write_config(path: Path, **overrides: Any) -> Path:
    path.write_text(json.dumps(derived_config(**overrides), indent=2))
    return path


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str]) -> int:
    if not argv or any("=" not in arg for arg in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    overrides = dict(arg.split("=", 1) for arg in argv[1:])
    write_config(Path(argv[0]), **{key: _value(value) for key, value in overrides.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
