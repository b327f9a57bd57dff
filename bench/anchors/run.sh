#!/usr/bin/env bash
# Set up the anchors venv, then measure the anchor codecs on the shared models, one model at a time,
# at low priority. Usage: bench/anchors/run.sh [--quick] [--methods M1,M2] [MODEL_NAME ...]
# (default models: efficientnet_lite0 mobilenet_v2 all_minilm_l6_v2). Output: target/bench/anchors/.
# The shared data folder is $PWLC_SHARED, or ../shared beside the repo root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${PWLC_SHARED:-$root/../shared}"
out="$root/target/bench/anchors"

quick=()
methods=()
models=()
while [[ $# -gt 0 ]]; do
    arg=$1
    shift
    case "$arg" in
        --quick) quick=(--quick) ;;
        --methods)
            [[ $# -gt 0 ]] || { echo "run.sh: --methods needs a value" >&2; exit 2; }
            methods=(--methods "$1")
            shift
            ;;
        -*) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
        *) models+=("$arg") ;;
    esac
done
if [[ ${#models[@]} -eq 0 ]]; then
    models=(efficientnet_lite0 mobilenet_v2 all_minilm_l6_v2)
fi

if [[ ! -d "$shared/models" ]]; then
    echo "run.sh: no models in $shared/models (set PWLC_SHARED)" >&2
    exit 1
fi

"$here/setup.sh"
for name in "${models[@]}"; do
    model="$shared/models/$name.onnx"
    if [[ ! -f "$model" ]]; then
        echo "run.sh: $model not found" >&2
        exit 1
    fi
    nice -n 10 "$root/target/anchors-venv/bin/python" "$here/anchors.py" "$model" --out "$out" "${quick[@]}" "${methods[@]}"
done
echo "results: $out/anchors.json"
