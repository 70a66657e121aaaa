#!/usr/bin/env bash
# The measurements behind docs/training.md's "Scaling" section, on this machine:
#   1. the demo model (global batch 128): one process × 2 threads against two ranks × 1 thread, over TCP on the
#      loopback interface and over shared memory;
#   2. ViT-B/32 (global batch 8): two ranks over TCP, communication per step;
#   3. two ranks in two network namespaces (scripts/mpi/two-hosts.sh) with the link limited by tc (token bucket) to
#      1 Gbit/s and 100 Mbit/s: gradient all-reduce time per step of the demo model, against the cost model
#      (scripts/mpi/scaling-model.py), with and without overlap.
# PARTS="1 3" runs only those parts.
# Data: the demo corpus (built by `./clip data build-demo` when missing). Needs root for part 3. Prints the
# per-run summary lines of rank 0 ("data-parallel: rank 0: … ms/step …") and the throughput.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
steps=${STEPS:-12}
corpus="${CLIPSHARP_CACHE:-$root/.cache/demo-corpus}/corpus"
[[ -f "$corpus/train.csv" ]] || ./clip data build-demo -q
# The demo model's own vocabulary (4,000 merges learned by ./clip demo from the training captions): its token
# embedding, and so the gradient bytes, are the demo's.
vocab=${DEMO_VOCAB:-$root/runs/demo/bpe-demo.txt.gz}
[[ -f "$vocab" ]] || { echo "measure.sh: $vocab is missing: run ./clip demo once (or set DEMO_VOCAB)" >&2; exit 1; }
./clip info --help >/dev/null 2>&1 || true   # builds once, before any mpirun starts ranks
work="$(mktemp -d /tmp/clipsharp-measure-XXXX)"
trap 'rm -rf "$work"; scripts/mpi/two-hosts.sh down m$$ 2>/dev/null || true' EXIT
clip_dll="$root/src/ClipSharp.Cli/bin/Release/net10.0/clip.dll"
mpi=(mpirun --allow-run-as-root --oversubscribe --tag-output)

config() { # name model-json batch steps [vocab]
  local v=""; [[ -n "${5:-}" ]] && v=", \"vocab\": \"$5\""
  cat > "$work/$1.json" <<JSON
{ "seed": 0, "model": { "config": $2 },
  "data": { "train": [ { "type": "csv", "path": "$corpus/train.csv", "image_column": "image", "caption_column": "caption" } ],
            "batch_size": $3, "workers": 1$v },
  "optimizer": { "lr": 1e-3 }, "schedule": { "steps": $4, "warmup_steps": 1 },
  "output": { "dir": "$work/$1", "checkpoint_every": 0, "eval_every": 0, "log_every": 1, "tensorboard": false } }
JSON
  echo "$work/$1.json"
}
demo='{ "embed_dim": 128, "image_resolution": 64, "vision_layers": 4, "vision_width": 128, "vision_patch_size": 8, "vision_heads": 2,
        "context_length": 32, "vocab_size": 4514, "transformer_width": 128, "transformer_heads": 2, "transformer_layers": 4 }'
vitb32='{ "embed_dim": 512, "image_resolution": 224, "vision_layers": 12, "vision_width": 768, "vision_patch_size": 32,
          "context_length": 77, "vocab_size": 49408, "transformer_width": 512, "transformer_heads": 8, "transformer_layers": 12 }'
summary() { grep -E "data-parallel: rank 0:|^(\[1,0\]<stderr>:)?done:" | sed "s/\[1,0\]<stderr>://g"; }

parts=" ${PARTS:-1 2 3} "
if [[ $parts == *" 1 "* ]]; then
echo "== 1. demo model, global batch 128, $steps steps"
c=$(config demo1 "$demo" 128 "$steps" "$vocab")
echo "-- one process, 2 threads"; OMP_NUM_THREADS=2 dotnet "$clip_dll" train -c "$c" 2>&1 | summary
for btl in tcp vader; do
  c=$(config "demo-$btl" "$demo" 128 "$steps" "$vocab")
  echo "-- two ranks × 1 thread, btl $btl"
  OMP_NUM_THREADS=1 "${mpi[@]}" -np 2 --mca btl "$btl,self" -x OMP_NUM_THREADS \
    $([[ $btl == tcp ]] && echo --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo) dotnet "$clip_dll" train -c "$c" 2>&1 | summary
done

fi
if [[ $parts == *" 2 "* ]]; then
echo "== 2. ViT-B/32, global batch 8, 3 steps, two ranks over TCP (loopback)"
c=$(config vitb32 "$vitb32" 8 3)
OMP_NUM_THREADS=1 "${mpi[@]}" -np 2 --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -x OMP_NUM_THREADS \
  dotnet "$clip_dll" train -c "$c" 2>&1 | summary

fi
if [[ $parts == *" 3 "* ]]; then
echo "== 3. demo model, two ranks in two namespaces, link limited by tc"
id=m$$
scripts/mpi/two-hosts.sh up "$id"
export CLIPSHARP_NETNS_HOSTS="10.77.0.1=csA-$id 10.77.0.2=csB-$id"
for rate in off 1gbit 100mbit; do
  scripts/mpi/two-hosts.sh slow "$id" "$rate"
  for overlap in false true; do
    c=$(config "demo-ns-$rate-$overlap" "$demo" 128 "$steps" "$vocab")
    echo "-- link $rate, overlap $overlap (bucket 1 MiB)"
    OMP_NUM_THREADS=1 ip netns exec "csA-$id" "${mpi[@]}" -np 2 -H 10.77.0.1:1,10.77.0.2:1 --mca plm_rsh_agent "$root/scripts/mpi/netns-rsh" \
      --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 -x OMP_NUM_THREADS \
      dotnet "$clip_dll" train -c "$c" --set distributed.overlap=$overlap --set distributed.bucket_mb=1 2>&1 | summary
  done
done
fi
