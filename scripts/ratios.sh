#!/usr/bin/env bash
# Whole-file compression ratios of every method on the shared ONNX models, as a Markdown table.
# Usage: scripts/ratios.sh [BOUND]   (default 5e-4; quant --max-error and pwl --p)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${PWLC_SHARED:-$root/../shared}
bound=${1:-5e-4}
cargo build --release -j2 --quiet -p pwlc-cli
pwlc="$root/target/release/pwlc"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| model | method | ratio (whole file) | max abs error | compress s |"
echo "|---|---|---|---|---|"
for model in "$shared"/models/*.onnx; do
  name=$(basename "$model" .onnx)
  for method in "quant --max-error $bound" "pwl --p $bound" "lossless"; do
    tag=${method%% *}
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$pwlc" compress "$model" -o "$out/$name.$tag.pwlc" --method $method --json > "$out/report.json"
    end=$(date +%s.%N)
    python3 - "$out/report.json" "$name" "$tag" "$start" "$end" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {t['ratio']:.3f}x | {t['max_abs_error']:.3g} | {float(sys.argv[5]) - float(sys.argv[4]):.2f} |")
PY
  done
done
