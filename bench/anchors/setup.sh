#!/usr/bin/env bash
# Create target/anchors-venv (relative to the repo root) with the anchor codecs pinned in requirements.txt.
# Idempotent: does nothing when the venv already holds exactly those pins. NNCodec builds C++ from source
# (and pulls in torch): the first run takes minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/anchors-venv"
reqs="$here/requirements.txt"
stamp="$venv/.anchors-requirements"

if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$reqs" "$stamp" \
    && "$venv/bin/python" -c 'import nncodec, zipnn, pysz, onnx, numpy, onnxruntime, zstandard, PIL' 2>/dev/null; then
    echo "anchors venv up to date: $venv"
    exit 0
fi

python="${PYTHON:-python3}"
"$python" -m venv "$venv"
nice -n 10 "$venv/bin/python" -m pip install --quiet --upgrade pip
nice -n 10 "$venv/bin/python" -m pip install --requirement "$reqs"
"$venv/bin/python" -c 'import nncodec, zipnn, pysz, onnx, numpy, onnxruntime, zstandard, PIL'
cp "$reqs" "$stamp"
echo "anchors venv ready: $venv"
