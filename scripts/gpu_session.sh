#!/usr/bin/env bash
# Everything the lent GPU machine must show, in one call (see README "GPU numbers"):
#   1. the model benchmark (fp32 / bf16, mamba_ssm kernel vs pure scan), 2. AVS-Synth generation,
#   3. the shipped models trained side by side (full, no BCSM, no DAM), 4. their evaluation on a
#   fresh test seed with counterfactual audio. Results land in $OUT as they are made.
# Usage on the device: OUT=... BUDGET_S=420 bash scripts/gpu_session.sh
# Knobs: TRAIN_CLIPS, VAL_CLIPS, TEST_CLIPS, SIZE, BATCH, LR, CONFIGS, SKIP_BENCH=1,
# EXTRA_SET (more --set pairs for python -m train).
set -u
BUDGET_S=${BUDGET_S:-420}
OUT=${OUT:-$PWD/out}
ART=$OUT/art
mkdir -p runs data
LOG_DIR=$ART
. "$(dirname "$0")/device_env.sh"

TRAIN_CLIPS=${TRAIN_CLIPS:-1200}; VAL_CLIPS=${VAL_CLIPS:-48}; TEST_CLIPS=${TEST_CLIPS:-120}
SIZE=${SIZE:-224}; BATCH=${BATCH:-16}; LR=${LR:-5e-4}; WORKERS=${WORKERS:-12}
CONFIGS=${CONFIGS:-"synth_tiny synth_tiny_no_bcsm synth_tiny_no_dam"}

log "generating AVS-Synth (train seed 0, test seed 1001) with $WORKERS processes"
python3 - "$TRAIN_CLIPS" "$VAL_CLIPS" "$TEST_CLIPS" "$SIZE" "$WORKERS" > "$ART/synth.log" 2>&1 <<'PY' &
import sys, time
from train.synth.generate import generate
train, val, test, size, workers = map(int, sys.argv[1:])
t = time.time()
generate("data/synth", seed=0, size=size, layouts=["ms3"], workers=workers, progress=False,
         sizes={"train": train, "val": val, "test": 0}, overwrite=True)
print(f"train+val: {train + val} clips in {time.time() - t:.1f} s", flush=True)
t = time.time()
generate("data/test1001", seed=1001, size=size, layouts=["ms3"], counterfactuals=True,
         workers=workers, progress=False, sizes={"train": 0, "val": 0, "test": test}, overwrite=True)
print(f"test (+4 counterfactual sets): {test} clips in {time.time() - t:.1f} s", flush=True)
PY
SYNTH_PID=$!

if [ "${SKIP_BENCH:-0}" != 1 ]; then
    log "benchmark"
    timeout 100 python3 benchmarks/bench_model.py --device "$DEVICE" --dtypes float32 bfloat16 \
        --both-scans --iters 10 --warmup 3 --out "$ART/bench_model.json" > "$ART/bench.log" 2>&1
    log "benchmark done (exit $?)"
fi
wait $SYNTH_PID; log "data done: $(cat "$ART/synth.log" | tr '\n' ' ')"

# train the models side by side on the one GPU, stopping in time for the evaluation
MIN=$(python3 -c "print(max(0.5, ($(left) - 75) / 60))")
log "training $CONFIGS for $MIN min each"
for cfg in $CONFIGS; do
    timeout $(( $(left) - 50 )) python3 -m train --config "train/configs/$cfg.yaml" \
        --out "runs/$cfg" --time-limit "$MIN" --set data_root=data/synth --set batch_size="$BATCH" \
        --set lr="$LR" --set num_workers=5 --set progress=false ${EXTRA_SET:-} \
        > "$ART/train_$cfg.log" 2>&1 &
done
wait
log "training done"

for cfg in $CONFIGS; do
    # ship what is evaluated: weights rounded to float16 (the transfer format), stored as float32
    python3 - "runs/$cfg/best" "$OUT/$cfg.fp16.safetensors" <<'PY' || continue
import sys
from safetensors.torch import load_file, save_file
src, dst = sys.argv[1:]
state = load_file(f"{src}/model.safetensors")
half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
save_file(half, dst)
save_file({k: v.float() if v.is_floating_point() else v for k, v in half.items()},
          f"{src}/model.safetensors")
PY
    timeout $(( $(left) - 10 )) python3 -m train.evaluate --checkpoint "runs/$cfg/best" \
        --data data/test1001 --setting ms3 --split test --device "$DEVICE" --num-workers 4 \
        --out "$ART/eval_$cfg.json" > "$ART/eval_$cfg.log" 2>&1 &
done
wait
log "evaluation done"
for cfg in $CONFIGS; do
    mkdir -p "$ART/$cfg"
    cp runs/$cfg/best/config.json runs/$cfg/metrics.jsonl runs/$cfg/config.yaml "$ART/$cfg/" 2>/dev/null
done
tar czf "$OUT/artifacts.tar.gz" -C "$OUT" art && rm -rf "$ART"
log "packed" 2>/dev/null || true
ls -la "$OUT"
