#!/usr/bin/env bash
# Times `pwlc eval` on the shared ImageNet sample: the original model alone, and the original
# together with its default quant-compressed variant (each image then runs through both networks).
# Prints a Markdown table of wall time, CPU time and peak memory per run, and the machine.
# Usage: scripts/eval_speed.sh [MODEL...]   (default: mobilenet_v2 efficientnet_lite0)
# Run it on an otherwise idle machine: the wall times are what the target is about.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${PWLC_SHARED:-$root/../shared}
out=$root/target/eval-speed
mkdir -p "$out"
: > "$out/log"   # progress output and errors of the runs
cargo build --release -j2 --quiet -p pwlc-cli
pwlc="${CARGO_TARGET_DIR:-$root/target}/release/pwlc"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(mobilenet_v2 efficientnet_lite0)
images="$shared/data/imagenet-sample"
count=$(find "$images" -maxdepth 1 -type f | wc -l)

# Runs "$@" under GNU time; prints "wall_s cpu_s max_rss_mb".
timed() {
  /usr/bin/time -f '%e %U %S %M' -o "$out/time" "$@" > /dev/null 2>> "$out/log"
  read -r wall user sys rss < "$out/time"
  echo "$wall $(awk "BEGIN { print $user + $sys }") $((rss / 1024))"
}

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%d)"
echo
echo "| model | run | images | network runs | wall s | CPU s | peak MB |"
echo "|---|---|---|---|---|---|---|"
for model in "${models[@]}"; do
  onnx="$shared/models/$model.onnx"
  "$pwlc" compress "$onnx" -o "$out/$model.pwlc" --force --json > /dev/null 2>> "$out/log"
  read -r wall cpu rss <<< "$(timed "$pwlc" eval "$onnx" --images "$images" --json)"
  echo "| $model | original only | $count | $count | $wall | $cpu | $rss |"
  read -r wall cpu rss <<< "$(timed "$pwlc" eval "$onnx" --compressed "$out/$model.pwlc" --images "$images" --json)"
  echo "| $model | original + compressed | $count | $((2 * count)) | $wall | $cpu | $rss |"
done
