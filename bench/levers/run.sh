#!/usr/bin/env bash
# Measures bias correction and per-row/per-column bounds (levers.py) on the shared CNNs, in the
# anchors venv.
# Usage: bench/levers/run.sh [MODEL...]   (default: mobilenet_v2 efficientnet_lite0)
# The per-row part starts from the tuned bounds of scripts/tune.sh (target/tune/MODEL-quant.json).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
"$root/bench/anchors/setup.sh" >&2
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(mobilenet_v2 efficientnet_lite0)
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
for model in "${models[@]}"; do
    echo
    nice -n 10 "$root/target/anchors-venv/bin/python" "$here/levers.py" "$model"
done
