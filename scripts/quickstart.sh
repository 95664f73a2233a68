#!/usr/bin/env bash
# The main job on the embedded default data, on CPU: write the synthetic cohort, preprocess it into
# Megatron indexed datasets, pretrain the tiny hybrid model (checkpoints, tensorboard, metrics),
# export the last checkpoint as a Hugging Face Qwen2-MoE folder.
# Everything lands in outputs/quickstart/ (recreated on each run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure_venv.sh"
cd "$root"
python="$root/.venv/bin/python"
rm -rf outputs/quickstart
"$python" -m sparseehr_mcore.data.synthetic outputs/quickstart/cohort --patients 300
"$python" tools/preprocess_ehr.py --source events --input outputs/quickstart/cohort --output-dir outputs/quickstart/data
"$python" examples/pretrain_sparseehr.py --config examples/configs/quickstart.yaml "$@"
"$python" tools/convert_checkpoint.py --to hf --input outputs/quickstart/run --output outputs/quickstart/hf
echo "tensorboard --logdir outputs/quickstart/run/tensorboard   # to look at the run"
