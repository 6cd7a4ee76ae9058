# Sourced by the device scripts (gpu_session.sh, gpu_speed.sh) after they set BUDGET_S and
# LOG_DIR: the clock and budget (left, log), offline settings, the carried wheels of
# shared/device (.whl/: mamba-ssm, soundfile) on PYTHONPATH, and DEVICE (cuda or cpu).
T0=$(date +%s)
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
left() { echo $(( T0 + BUDGET_S - $(date +%s) )); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG_DIR/session.log"; }

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl && \
        export PYTHONPATH=$PWD/.site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
DEVICE=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
python3 -c "import torch, selm.modeling.ssm as s; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', 'mamba kernel:', s.HAS_MAMBA_KERNEL)" | tee -a "$LOG_DIR/session.log"
