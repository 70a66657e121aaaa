#!/usr/bin/env bash
# Training throughput and peak memory of the CPU-sized configs (issue 4's training benchmark): every combination of
# model preset × precision (fp32, bf16) × gradient checkpointing (off, on), as `clip train` runs it on the demo
# corpus, batch 128. One process per combination; peak RSS from /usr/bin/time, samples/s from the run's own summary
# (steps after the first, so start-up and the first step's allocations are excluded).
# Needs the demo corpus and a vocabulary: run `./clip demo` once first.
# Usage: bench/train-configs.sh [STEPS] [OUT.md]      (defaults: 12 steps, prints the Markdown table)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
steps="${1:-12}"
out="${2:-/dev/stdout}"
corpus="${CLIPSHARP_CACHE:-$root/.cache/demo-corpus}/corpus"
vocab="$root/runs/demo/bpe-demo.txt.gz"
[[ -f "$corpus/train.csv" && -f "$vocab" ]] || { echo "bench/train-configs.sh: run ./clip demo first (needs $corpus/train.csv and $vocab)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "bench/train-configs.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
./clip --help > /dev/null   # build once, outside the measurements
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
preload=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[[ -f $preload ]] || preload=
tc=no; [[ -n $preload ]] && tc=yes
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) CPUs), load average before: $(cut -d' ' -f1-3 /proc/loadavg); batch 128, $steps steps, tcmalloc: $tc."
  echo
  echo "| model | precision | checkpointing | samples/s (steps 2–$steps) | peak RSS MB |"
  echo "| --- | --- | --- | ---: | ---: |"
  for model in cpu-vit-mini cpu-vit-tiny; do
    for precision in fp32 bf16; do
      for ckpt in false true; do
        name="$model-$precision-$ckpt"
        cat > "$work/$name.json" <<JSON
{ "seed": 0,
  "model": { "name": "$model", "precision": "$precision", "grad_checkpointing": $ckpt },
  "data": { "train": [ { "type": "csv", "path": "$corpus/train.csv", "image_column": "image", "caption_column": "caption" } ],
            "vocab": "$vocab", "batch_size": 128 },
  "schedule": { "steps": $steps, "warmup_steps": 1 },
  "output": { "dir": "$work/$name", "checkpoint_every": 100000, "eval_every": 100000, "log_every": 1, "tensorboard": false } }
JSON
        LD_PRELOAD=$preload /usr/bin/time -f '%M' -o "$work/$name.rss" \
          dotnet src/ClipSharp.Cli/bin/Release/net10.0/clip.dll train --config "$work/$name.json" > "$work/$name.log" 2>&1
        rate=$(python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train/loss"' in l]
t = [r["time"] for r in rows]
print(f"{(len(t) - 1) * 128 / (t[-1] - t[0]):.1f}" if len(t) > 1 else "n/a")
PY
)
        rss=$(( $(tail -1 "$work/$name.rss") / 1024 ))
        echo "| $model | $precision | ${ckpt/false/off} | $rate | $rss |" | sed 's/| true |/| on |/'
      done
    done
  done
} > "$out"
