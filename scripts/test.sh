#!/usr/bin/env bash
# Install into .venv and run the linters and the whole test suite. Two torch-free
# environments prove that bundles and the station run with ONNX Runtime alone
# (.venv-runtime, `pip install ".[station]"`) and that `evaluate` needs no torch
# (.venv-eval, `pip install ".[eval]"`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two torch-free environments: the line PC's (bundles and the station, `.[station]`) and
# torch-free evaluation (`.[eval]`).
for env in runtime:station eval:eval; do
    name="${env%%:*}" extra="${env##*:}"
    if [ ! -x ".venv-$name/bin/python" ]; then
        "${PYTHON:-python3}" -m venv ".venv-$name"
    fi
    ".venv-$name/bin/python" -m pip install --quiet --upgrade pip
    ".venv-$name/bin/python" -m pip install --quiet ".[$extra]"
done
export LINEGUARD_RUNTIME_PYTHON="$PWD/.venv-runtime/bin/python"
export LINEGUARD_EVAL_PYTHON="$PWD/.venv-eval/bin/python"
. .venv/bin/activate
ruff check src tests bench scripts
mypy  # src/lineguard; settings in pyproject.toml
python -m pytest -q "$@"
