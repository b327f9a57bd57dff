#!/usr/bin/env bash
# Runs `pwlc tune` on the shared models (quant and pwl for the two CNNs at 99% top-1 agreement,
# quant for MiniLM at mean cosine 0.999) and prints a Markdown table of the results: calibration
# on images/sentences 0, 2, 4, ..., the check on 1, 3, 5, ...
# Usage: scripts/tune.sh [OUT_DIR]   (default target/tune; JSON per run is kept there)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${PWLC_SHARED:-$root/../shared}
out=${1:-$root/target/tune}
mkdir -p "$out"
cargo build --release -j2 --quiet -p pwlc-cli
pwlc="${CARGO_TARGET_DIR:-$root/target}/release/pwlc"

run() {
  local name=$1
  shift
  local start end
  start=$(date +%s)
  "$pwlc" tune "$@" --force --json -o "$out/$name.pwlc" > "$out/$name.json"
  end=$(date +%s)
  echo $((end - start)) > "$out/$name.seconds"
}

images=(--images "$shared/data/imagenet-sample")
for model in mobilenet_v2 efficientnet_lite0; do
  for method in quant pwl; do
    run "$model-$method" "$shared/models/$model.onnx" "${images[@]}" --method "$method"
  done
done
run all_minilm_l6_v2-quant "$shared/models/all_minilm_l6_v2.onnx" \
  --tokens "$shared/data/text/imagenet_class_names_tokens.npz" --min-cosine 0.999

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("| model | method | target | calibration | held-out check | bits/weight | ratio (whole file) | s |")
print("|---|---|---|---|---|---|---|---|")
for path in sorted(out.glob("*.json")):
    d = json.loads(path.read_text())
    t = d["tuned"]
    q = t["chosen"]["quality"]
    h = d["held_out_evaluation"]["compressed"]
    model, method = path.stem.rsplit("-", 1)
    if "classifier" in q:
        target = "top-1 agreement >= 0.99"
        cal = f"{q['classifier']['top1_agreement']:.1%} of {t['calibration_items']}"
        held = f"{h['top1_agreement']:.1%} of {d['held_out_evaluation']['images']}"
    else:
        target = "mean cosine >= 0.999"
        cal = f"cosine {q['embedding']['cosine']['mean']:.5f} ({t['calibration_items']})"
        held = f"cosine {h['cosine']['mean']:.5f} ({d['held_out_evaluation']['sentences']})"
    seconds = (out / f"{path.stem}.seconds").read_text().strip()
    ratio = d["compressed"]["totals"]["ratio"]
    print(f"| {model} | {method} | {target} | {cal} | {held} | {t['chosen']['bits_per_weight']:.3f} | {ratio:.3f}x | {seconds} |")
PY
