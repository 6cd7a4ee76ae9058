#!/usr/bin/env bash
# The speed checks a lent GPU runs, in one call; results land in $OUT as they are made:
#   1. the CUDA tests: kernel vs pure scan within 1e-5, our Mamba vs mamba_ssm (pytest -m gpu)
#   2. the forward of each preset at B = 1 and 4 clips, eager and through torch.compile
#      ("reduce-overhead": CUDA graphs), full vs backbone-only, kernel and pure scan, and one
#      training step's time (benchmarks/bench_model.py)
#   3. the selective scan on CUDA at L = 5, 10, 50, 245 (benchmarks/bench_scan.py)
# Usage on the device:  OUT=... BUDGET_S=480 bash scripts/gpu_speed.sh
# On a CPU it runs as a short dry run of the same steps (the family preset, eager only).
# Knobs: PRESETS, CLIPS, COMPILE, ITERS, BOTH_SCANS=1 (also time the pure scan), SKIP_TESTS=1.
set -u
BUDGET_S=${BUDGET_S:-480}
OUT=${OUT:-$PWD/out}
LOG_DIR=$OUT
. "$(dirname "$0")/device_env.sh"
if [ "$DEVICE" = cuda ]; then
    PRESETS=${PRESETS:-"family/light selm_r50 selm_pvt_b5"}
    CLIPS=${CLIPS:-"1 4"}; COMPILE=${COMPILE:-"none reduce-overhead"}; ITERS=${ITERS:-10}
    SCAN_ARGS="--device cuda --lengths 5,10,50,245 --batches 4,16"
else
    PRESETS=${PRESETS:-"family/light"}; CLIPS=${CLIPS:-"1"}; COMPILE=${COMPILE:-"none"}
    ITERS=${ITERS:-2}; SCAN_ARGS="--device cpu --lengths 5 --batches 4 --dims 64 --repeats 2"
fi

if [ "${SKIP_TESTS:-0}" != 1 ]; then
    log "CUDA tests (pytest -m gpu)"
    timeout $(( $(left) / 4 )) python3 -m pytest -q -m gpu tests/selm/modeling \
        > "$OUT/tests_gpu.log" 2>&1
    log "CUDA tests done (exit $?): $(tail -1 "$OUT/tests_gpu.log")"
fi

log "forward / backbone / training step: presets $PRESETS, B $CLIPS, compile $COMPILE"
BOTH=""; [ "$DEVICE" = cuda ] && [ "${BOTH_SCANS:-0}" = 1 ] && BOTH="--both-scans"
# shellcheck disable=SC2086  # the knobs are word lists
timeout $(( $(left) - 60 )) python3 benchmarks/bench_model.py --device "$DEVICE" \
    --presets $PRESETS --clips $CLIPS --compile $COMPILE $BOTH --train-step \
    --iters "$ITERS" --warmup 3 --out "$OUT/bench_model_speed.json" > "$OUT/bench_model.log" 2>&1
log "bench_model done (exit $?)"

log "selective scan"
# shellcheck disable=SC2086
timeout $(( $(left) - 5 )) python3 benchmarks/bench_scan.py $SCAN_ARGS \
    --out "$OUT/bench_scan_speed.json" > "$OUT/bench_scan.log" 2>&1
log "bench_scan done (exit $?)"
ls -la "$OUT"
