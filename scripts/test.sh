#!/usr/bin/env bash
# Install into .venv and run the linters and the whole test suite. A second,
# torch-free environment (.venv-runtime, `pip install ".[station]"`) proves that
# bundles and the station run with ONNX Runtime alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x .venv-runtime/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv-runtime
fi
.venv-runtime/bin/python -m pip install --quiet --upgrade pip
.venv-runtime/bin/python -m pip install --quiet ".[station]"
export LINEGUARD_RUNTIME_PYTHON="$PWD/.venv-runtime/bin/python"
. .venv/bin/activate
ruff check src tests bench
python -m pytest -q "$@"
