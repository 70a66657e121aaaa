#!/usr/bin/env bash
# The longer reference run behind docs/results.md: trains the demo CLIP for longer, then measures it the way the
# paper does — zero-shot on every split, zero-shot vs linear probe vs few-shot on the same features (Fashion-MNIST),
# and accuracy under distribution shift (emoji concepts drawn by artists never seen in training).
# Usage: scripts/reference-run.sh [STEPS] [RUN_DIR] [clip demo options...]   (defaults: 3000 steps, runs/reference)
# The reference recipe is the demo's model and optimiser with stronger augmentation for the longer schedule (wider
# crops, colour jitter, and grayscale, which is what the black-outline artists of the shift split look like);
# extra arguments (e.g. --set optimizer.lr=5e-4) are passed on to `clip demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
steps="${1:-3000}"
run="$(realpath -m "${2:-runs/reference}")"
shift $(( $# > 2 ? 2 : $# ))
cache="${CLIPSHARP_CACHE:-$root/.cache/demo-corpus}"
corpus="$cache/corpus"

./clip demo --output "$run" --steps "$steps" \
  --set data.augment.scale_min=0.5 --set data.augment.color_jitter=0.3 --set data.augment.grayscale=0.2 \
  --set optimizer.weight_decay=0.2 "$@"

model="$run/final.safetensors"
vocab="$run/bpe-demo.txt.gz"
splits="$run/splits"
mkdir -p "$splits"

# Fashion-MNIST: one half is the labelled pool for the probes, the other half the test set (absolute image paths).
awk -F, -v c="$corpus" 'NR==1{print; next} NR%2==0{print c "/" $0}' "$corpus/fashion-mnist.csv" > "$splits/fashion-pool.csv"
awk -F, -v c="$corpus" 'NR==1{print; next} NR%2==1{print c "/" $0}' "$corpus/fashion-mnist.csv" > "$splits/fashion-test.csv"

# Distribution shift: the shift split's concepts drawn by the training artists (domain 1, where the probe is
# trained), by Symbola and by OpenMoji's black line art. Same class list for all three.
awk -F, -v c="$corpus" 'NR==1{print; next} $NF=="emoji-symbola"{print c "/" $0}' "$corpus/shift.csv" > "$splits/shift-symbola.csv"
awk -F, -v c="$corpus" 'NR==1{print; next} $NF=="emoji-openmoji-black"{print c "/" $0}' "$corpus/shift.csv" > "$splits/shift-openmoji-black.csv"
awk -F, -v c="$corpus" 'NR==1{print; next} {
    n = split($1, p, "/"); file = p[n];
    if (seen[file]++) next;
    for (i = 0; i < 3; i++) {
      artist = (i == 0 ? "noto" : i == 1 ? "emojione" : "openmoji-color");
      path = c "/images/emoji/" artist "/" file;
      if (system("test -f \"" path "\"") == 0) { line = $0; sub(/^[^,]*/, path, line); sub(/,[^,]*$/, ",emoji-" artist, line); print line }
    }
  }' "$corpus/shift.csv" > "$splits/shift-train-artists.csv"

common=(--model "$model" --vocab "$vocab" --quiet)
./clip eval linear-probe "${common[@]}" --train "$splits/fashion-pool.csv" --test "$splits/fashion-test.csv" -o "$run/eval/fashion-probe"
./clip eval few-shot "${common[@]}" --train "$splits/fashion-pool.csv" --test "$splits/fashion-test.csv" --k 1,2,4,8,16 --seeds 3 \
  --classnames "$corpus/fashion-mnist-classes.txt" --templates "a {}." --templates "a drawing of a {}." --templates "a picture of a {}." \
  -o "$run/eval/fashion-few-shot"
./clip eval robustness "${common[@]}" --c 1000 --classnames "$corpus/shift-classes.txt" --templates "an emoji of {}." --templates "{}" \
  --domain "$splits/shift-train-artists.csv" --domain "$splits/shift-symbola.csv" --domain "$splits/shift-openmoji-black.csv" \
  --domain-name "training artists" --domain-name "Symbola" --domain-name "OpenMoji black" -o "$run/eval/shift-robustness"
./clip eval retrieval "${common[@]}" --data "$corpus/val.csv" -o "$run/eval/val-retrieval"
echo "reference run complete: $run"
