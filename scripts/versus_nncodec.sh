#!/usr/bin/env bash
# Compares `pwlc tune` with NNCodec at equal accuracy on the same held-out data.
#
# Reads the tuned runs of scripts/tune.sh (target/tune/*-quant.json) and the NNCodec operating
# points of bench/anchors/run.sh (target/bench/anchors/anchors.json and the reconstructed ONNX
# files beside it). Every NNCodec point is evaluated with `pwlc eval --split calibration` and
# `--split held-out`, on exactly the items `pwlc tune` calibrated on (images or sentences 0, 2, 4,
# ...) and checked on (1, 3, 5, ...). For each model it prints pwlc's tuned ratio and two NNCodec
# points at the same target (top-1 agreement >= 0.99 for the CNNs, mean cosine >= 0.999 for
# MiniLM): the one chosen as `pwlc tune` chooses, the largest ratio that meets the target on the
# calibration half, with its held-out result; and the largest ratio that meets it on the held-out
# half itself, a choice that has seen the data it is judged on.
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

# Evaluates every NNCodec reconstruction on both halves (skipping those already done).
python3 - "$anchors" <<'PY' > "$out/points.tsv"
import json, sys
for r in json.load(open(sys.argv[1]))["records"]:
    if r["method"] == "nncodec":
        print(r["model"], r["param"], r["ratio_file"], r["reconstructed_onnx"], sep="\t")
PY
while IFS=$'\t' read -r model param ratio onnx; do
  if [ ! -f "$onnx" ]; then
    echo "$model $param: $onnx not found (rerun bench/anchors/run.sh --methods nncodec $model); not evaluated" >&2
    continue
  fi
  for split in held-out calibration; do
    result="$out/$model-${param//=/}.$split.json"
    [ -s "$result" ] && continue
    # shellcheck disable=SC2046
    "$pwlc" eval "$shared/models/$model.onnx" --compressed "$onnx" $(data_args "$model") \
      --split "$split" --json > "$result.tmp"
    mv "$result.tmp" "$result"
  done
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
    stem = f"{model}-{param.replace('=', '')}"
    reports = [out / f"{stem}.{split}.json" for split in ("calibration", "held-out")]
    if not all(path.exists() for path in reports):
        continue
    calibration, held_out = (quality(json.loads(path.read_text())) for path in reports)
    points.setdefault(model, []).append((float(ratio), param, calibration, held_out))

def largest(candidates):
    return max(candidates, key=lambda p: p[0]) if candidates else None

def describe(point):
    return f"{point[1]}: {point[0]:.3f}x, {point[3][1]}" if point else "none qualifies"

def factor(ours, ours_meets, point, target):
    if not ours_meets or point is None:
        return "-"
    if point[3][0] < target:
        return "NNCodec misses"
    return f"{ours / point[0]:.2f}x"

print("| model | target | pwlc tune (quant), held-out | NNCodec chosen on the calibration half, held-out | pwlc / NNCodec | NNCodec's best on the held-out half itself | pwlc / that |")
print("|---|---|---|---|---|---|---|")
sweeps = []
for model in sorted(points):
    tuned_path = tune_dir / f"{model}-quant.json"
    if not tuned_path.exists():
        continue
    tuned = json.loads(tuned_path.read_text())
    value, text = quality(tuned["held_out_evaluation"])
    target = 0.999 if "cosine" in text else 0.99
    ours = tuned["compressed"]["totals"]["ratio"]
    meets = value >= target
    calibrated = largest([p for p in points[model] if p[2][0] >= target])
    hindsight = largest([p for p in points[model] if p[3][0] >= target])
    print(
        f"| {model} | {'cosine' if target > 0.99 else 'agreement'} >= {target} "
        f"| {ours:.3f}x, {text}{'' if meets else ' (misses)'} "
        f"| {describe(calibrated)} | {factor(ours, meets, calibrated, target)} "
        f"| {describe(hindsight)} | {factor(ours, meets, hindsight, target)} |"
    )
    sweep = "; ".join(
        f"{p[1]} {p[0]:.2f}x: {p[2][1]} / {p[3][1]}" for p in sorted(points[model], reverse=True)
    )
    sweeps.append(f"- {model}: {sweep}")
print()
print("NNCodec points (ratio: calibration half / held-out half):")
print("\n".join(sweeps))
PY
