"""Running the CLI in the torch-free environments scripts/test.sh builds: the line PC's
(``.[station]``, LINEGUARD_RUNTIME_PYTHON) and torch-free evaluation (``.[eval]``,
LINEGUARD_EVAL_PYTHON). Without them the tests that need them skip."""

from __future__ import annotations

import os
import subprocess

import pytest

ENVIRONMENTS = {"runtime": "LINEGUARD_RUNTIME_PYTHON", "eval": "LINEGUARD_EVAL_PYTHON"}
# The line PC's install leaves these out (the `eval` extra adds them; SciPy is in both: the
# station's gauging tools fit with it).
EVAL_ONLY = ("sklearn", "matplotlib", "pycocotools")


def _importable(python: str, module: str) -> bool:
    return (
        subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0
    )


def runtime_python(env: str = "runtime") -> str:
    python = os.environ.get(ENVIRONMENTS[env])
    if not python:
        pytest.skip(f"{ENVIRONMENTS[env]} not set (scripts/test.sh sets it)")
    assert not _importable(python, "torch"), f"the {env} environment must not have torch"
    return python


def torch_free_cli(*args: str, env: str = "runtime", timeout: int = 300) -> subprocess.CompletedProcess:
    """``lineguard ARGS`` without torch; fails the test on a non-zero exit or a traceback."""
    done = run_cli(*args, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


def run_cli(*args: str, env: str = "runtime", timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [runtime_python(env), "-m", "lineguard.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done
