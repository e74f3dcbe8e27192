"""The README's quick start is what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r'^TEST_COMMAND="(.*)"$', ci, re.MULTILINE).group(1)
    readme = (ROOT / "README.md").read_text()
    assert f"```bash\n{command}\n```" in readme


def test_readme_pins_torch_like_setup_cfg():
    assert "torch==2.13.0" in (ROOT / "setup.cfg").read_text()
    assert "`2.13.0`" in (ROOT / "README.md").read_text()
