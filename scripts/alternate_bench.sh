#!/usr/bin/env bash
# Compares a codec benchmark example of an older revision with the working tree's, run in turn
# on the same dumps so that the machine's drifting load hits both alike; prints per binary the
# median of every numeric column of the benchmark's totals line ("N tensors, ...").
# Usage: scripts/alternate_bench.sh REV ROUNDS EXAMPLE DIR ARGS...
#   e.g. scripts/alternate_bench.sh e6a10f7 6 pwl_bench /tmp/w/mobilenet_v2 1e-4
#        scripts/alternate_bench.sh e6a10f7 3 quant_bench /tmp/w/mobilenet_v2 5e-4
# DIR holds raw dumps (scripts/dump_weights.py). One totals line per run is compared; with
# several bounds, give one bound per call.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 4 ] || { sed -n '5,7p' "$0" >&2; exit 1; }
rev=$1 rounds=$2 example=$3
shift 3
out=$root/target/alternate
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --release -j2 --quiet -p pwlc-codecs --example "$example"
cp "$target/release/examples/$example" "$out/new"
# The older revision builds in a worktree of its own, into its own target directory.
old_tree=$out/tree
git -C "$root" worktree remove --force "$old_tree" 2> /dev/null || true
git -C "$root" worktree add --detach --quiet "$old_tree" "$rev"
trap 'git -C "$root" worktree remove --force "$old_tree"' EXIT
(cd "$old_tree" && CARGO_TARGET_DIR=$out/target cargo build --release -j2 --quiet \
  -p pwlc-codecs --example "$example")
cp "$out/target/release/examples/$example" "$out/old"

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
: > "$out/runs"
for _ in $(seq "$rounds"); do
  for binary in old new; do
    "$out/$binary" "$@" | grep ' tensors, ' | tail -1 | sed "s/^/$binary /" >> "$out/runs"
  done
done
python3 - "$out/runs" "$example" "$rev" <<'EOF'
import statistics, sys
runs, example, rev = sys.argv[1:]
rows = {"old": [], "new": []}
for line in open(runs):
    binary, *fields = line.split()
    rows[binary].append(fields)
for binary, label in (("old", rev), ("new", "working tree")):
    fields = rows[binary]
    medians = []
    for column in zip(*fields):
        if len(set(column)) == 1:  # labels, sizes and digests: the same in every run
            medians.append(column[0])
            continue
        try:
            medians.append(f"{statistics.median(float(v.rstrip('x%')) for v in column):g}")
        except ValueError:
            medians.append(column[0])
    print(f"{example} {label} ({len(fields)} runs, medians):", " ".join(medians))
EOF
