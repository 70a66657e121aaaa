#!/usr/bin/env bash
# Reproduces the approximate-index numbers in docs/benchmarks.md ("Approximate index") with `clip bench ann`.
# Run it on a quiet machine (the load average is printed beside every table). About 1 M × 512 float32 plus the
# graph: ~4 GB of memory; the 1 M build takes tens of minutes on 2 cores.
#   scripts/bench-ann.sh [DEMO_INDEX]   # default: the index `./clip demo` writes into its corpus cache
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
md=docs/benchmarks.md
demo_index="${1:-${CLIPSHARP_CACHE:-$root/.cache/demo-corpus}/corpus/demo.index.safetensors}"
# The earlier probe's settings (M=16, ef_add=128) at 20 000 vectors: build time now linear, recall against ef.
./clip bench ann --vectors 20000 --connectivity 16 --expansion-add 128 --ef 64,256,1024 --queries 500 --markdown "$md" --section probe-20k
# The demo corpus embedded by the demo model ("more like this" queries).
if [[ -f "$demo_index" ]]; then
  ./clip bench ann --index "$demo_index" --ef 16,32,64,128 --markdown "$md" --section demo
else
  echo "no demo index at $demo_index (run ./clip demo first); skipping that table"
fi
# 100 000 random unit vectors with cheap build settings (the table measured when 1 M did not fit the session).
./clip bench ann --vectors 100000 --dim 512 --connectivity 16 --expansion-add 40 --ef 64,512,2048,8192 --queries 100 --markdown "$md" --section random-100k
# One million random unit vectors of 512 dims: the hard case for a graph index (M 32, efConstruction 256: the longest step).
./clip bench ann --vectors 1000000 --dim 512 --ef 64,256,1024,4096 --markdown "$md" --section random-1m
