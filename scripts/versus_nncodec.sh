#!/usr/bin/env bash
# Compares `pwlc tune` with NNCodec at equal accuracy on the same held-out data.
#
# Reads the tuned runs of scripts/tune.sh (target/tune/*-quant.json) and the NNCodec operating
# points of bench/anchors/run.sh (target/bench/anchors/anchors.json and the reconstructed ONNX
# files beside it). Every NNCodec point is evaluated with `pwlc eval --split held-out`, on exactly
# the items the tuned file was checked on (images or sentences 1, 3, 5, ...). For each model it
# prints pwlc's tuned ratio and NNCodec's best ratio among its points that keep the same target
# on that half (top-1 agreement >= 0.99 for the CNNs, mean cosine >= 0.999 for MiniLM).
# Usage: scripts/versus_nncodec.sh [TUNE_DIR] [ANCHORS_JSON]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${PWLC_SHARED:-$root/../shared}
tune_dir=${1:-$root/target/tune}
anchors=${2:-$root/target/bench/anchors/anchors.json}
out="$tune_dir/nncodec"
mkdir -p "$out"
cargo build --release -j2 --quiet -p pwlc-cli
pwlc="${CARGO_TARGET_DIR:-$root/target}/release/pwlc"

data_args() {
  case $1 in
    all_minilm_l6_v2) echo "--tokens $shared/data/text/imagenet_class_names_tokens.npz" ;;
    *) echo "--images $shared/data/imagenet-sample" ;;
  esac
}

# Evaluates every NNCodec reconstruction on the held-out half (skipping those already done).
python3 - "$anchors" <<'PY' > "$out/points.tsv"
import json, sys
for r in json.load(open(sys.argv[1]))["records"]:
    if r["method"] == "nncodec":
        print(r["model"], r["param"], r["ratio_file"], r["reconstructed_onnx"], sep="\t")
PY
while IFS=$'\t' read -r model param ratio onnx; do
  result="$out/$model-${param//=/}.json"
  [ -s "$result" ] && continue
  if [ ! -f "$onnx" ]; then
    echo "$model $param: $onnx not found (rerun bench/anchors/run.sh --methods nncodec $model); not evaluated" >&2
    continue
  fi
  # shellcheck disable=SC2046
  "$pwlc" eval "$shared/models/$model.onnx" --compressed "$onnx" $(data_args "$model") \
    --split held-out --json > "$result.tmp"
  mv "$result.tmp" "$result"
done < "$out/points.tsv"

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
python3 - "$tune_dir" "$out" <<'PY'
import json, pathlib, sys
tune_dir, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

def quality(report):
    c = report["compressed"]
    if "top1_agreement" in c:
        return c["top1_agreement"], f"{c['top1_agreement']:.1%} agreement"
    return c["cosine"]["mean"], f"cosine {c['cosine']['mean']:.5f}"

points = {}
for line in (out / "points.tsv").read_text().splitlines():
    model, param, ratio, _ = line.split("\t")
    path = out / f"{model}-{param.replace('=', '')}.json"
    if not path.exists():
        continue
    report = json.loads(path.read_text())
    points.setdefault(model, []).append((float(ratio), param, *quality(report)))

print("| model | target (held-out half) | pwlc tune (quant) | NNCodec, best qualifying point | pwlc / NNCodec | NNCodec points (ratio, held-out quality) |")
print("|---|---|---|---|---|---|")
for model in sorted(points):
    tuned_path = tune_dir / f"{model}-quant.json"
    if not tuned_path.exists():
        continue
    tuned = json.loads(tuned_path.read_text())
    value, text = quality(tuned["held_out_evaluation"])
    target = 0.999 if "cosine" in text else 0.99
    ours = tuned["compressed"]["totals"]["ratio"]
    mark = "" if value >= target else " (misses)"
    rivals = [p for p in points[model] if p[2] >= target]
    best = max(rivals) if rivals else None
    rival = f"{best[1]}: {best[0]:.3f}x, {best[3]}" if best else "none qualifies"
    factor = f"{ours / best[0]:.2f}x" if best and value >= target else "-"
    sweep = "; ".join(f"{p[1]} {p[0]:.2f}x {p[3]}" for p in sorted(points[model], reverse=True))
    print(f"| {model} | {'cosine' if target > 0.99 else 'agreement'} >= {target} | {ours:.3f}x, {text}{mark} | {rival} | {factor} | {sweep} |")
PY
