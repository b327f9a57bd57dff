#!/usr/bin/env bash
# Rerun the benchmarks and regenerate docs/RESULTS.md and docs/results/*.svg.
#
# Usage: scripts/bench.sh [--anchors] [--limit N]
#   --anchors   first rerun the anchor codecs (bench/anchors/run.sh, about an hour on 2 cores)
#   --limit N   images (and sentences) evaluated per model (default: pwlc bench run's)
# The anchors' records are merged from $ANCHORS_JSON, or target/bench/anchors/anchors.json when it
# exists. The shared data folder is $PWLC_SHARED, or ../shared beside the repo root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
shared="${PWLC_SHARED:-../shared}"
out="target/bench/run"

run_anchors=0
limit=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --anchors) run_anchors=1 ;;
        --limit) limit=(--limit "$2"); shift ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

models="$shared/models"
images="$shared/data/imagenet-sample"
tokens="$shared/data/text/imagenet_class_names_tokens.npz"
for f in "$models/mobilenet_v2.onnx" "$models/efficientnet_lite0.onnx" "$models/all_minilm_l6_v2.onnx" "$images" "$tokens"; do
    [[ -e "$f" ]] || { echo "bench.sh: $f not found (set PWLC_SHARED)" >&2; exit 1; }
done

if [[ $run_anchors -eq 1 ]]; then
    bench/anchors/run.sh
fi
anchors_json="${ANCHORS_JSON:-target/bench/anchors/anchors.json}"
anchors=()
if [[ -f "$anchors_json" ]]; then
    anchors=(--anchors "$anchors_json")
else
    echo "bench.sh: no $anchors_json, running without anchors (use --anchors)" >&2
fi

cargo build --release -p pwlc-cli
pwlc="${CARGO_TARGET_DIR:-target}/release/pwlc"

nice -n 5 "$pwlc" bench run "$models/mobilenet_v2.onnx" "$models/efficientnet_lite0.onnx" \
    "$models/all_minilm_l6_v2.onnx" --images "$images" --tokens "$tokens" "${limit[@]}" \
    "${anchors[@]}" --out "$out"
nice -n 5 "$pwlc" bench thesis "$models/mobilenet_v2.onnx" "$models/efficientnet_lite0.onnx" \
    --images "$images" --out "$out"
"$pwlc" bench report --bench "$out/bench.json" --thesis "$out/thesis.json" --out docs
