# TEMPORARY during the layering move (helpers' worktrees share this venv's entry point); removed before landing.
from .testing.pytest_plugin import *  # noqa: F401,F403
from .testing.pytest_plugin import pytest_addoption, pytest_configure, pytest_generate_tests, xbackend_adapter  # noqa: F401
