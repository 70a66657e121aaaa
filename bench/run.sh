#!/usr/bin/env bash
# Regenerates docs/benchmarks.md (+ docs/benchmarks.png, bench/results.json): installs the PyTorch baseline's
# Debian packages when missing, then runs `clip bench`, which measures ClipSharp and torch_anchor.py in one run.
# Extra arguments go to `clip bench` (e.g. --only vit-b32); BENCH_RUNS / BENCH_WARMUP set the timed and warm-up runs (7 / 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkgs=(python3-torch python3-torchvision libopenblas0-openmp libtcmalloc-minimal4)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bench/run.sh: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
echo "bench/run.sh: load average now: $(cut -d' ' -f1-3 /proc/loadavg) (timings are trustworthy below ~1.5 on 2 cores; rows with other-process CPU > 0.1 are marked noisy)" >&2
cd "$root"
exec ./clip bench --runs "${BENCH_RUNS:-7}" --warmup "${BENCH_WARMUP:-2}" --json bench/results.json --markdown docs/benchmarks.md "$@"
