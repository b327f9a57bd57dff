#!/usr/bin/env bash
# Runs the whole test suite, as CI does. Needs only the Rust toolchain, Python and pip.
#
# Tests that run the rewritten models in onnxruntime use a Python virtual environment under
# target/, created here once (onnxruntime and numpy from the package index). Tests that read the
# real models in ../shared print a skip reason when that folder is absent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv="$root/target/test-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime numpy
fi
export PWLC_TEST_PYTHON="$venv/bin/python"

cargo test --workspace --release -j2
