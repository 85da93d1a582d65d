"""Running the CLI in the second, torch-free environment (scripts/test.sh builds it and sets
LINEGUARD_RUNTIME_PYTHON; without it the tests that need it skip)."""

from __future__ import annotations

import os
import subprocess

import pytest


def runtime_python() -> str:
    python = os.environ.get("LINEGUARD_RUNTIME_PYTHON")
    if not python:
        pytest.skip("LINEGUARD_RUNTIME_PYTHON not set (scripts/test.sh sets it)")
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    assert no_torch.returncode != 0, "the runtime environment must not have torch"
    return python


def torch_free_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``lineguard ARGS`` without torch; fails the test on a non-zero exit or a traceback."""
    done = subprocess.run(
        [runtime_python(), "-m", "lineguard.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done
