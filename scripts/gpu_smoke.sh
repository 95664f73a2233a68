#!/usr/bin/env bash
# GPU smoke test, in the docker/ image or on any CUDA machine with the project installed:
#   1. tests/gpu (Transformer Engine spec parity, bf16 and FP8 steps),
#   2. a short bf16 pretraining of the paper preset (16 layers, hidden 2048, D=4, seq 2048) on one
#      GPU, on the synthetic cohort preprocessed by tools/preprocess_ehr.py, printing tokens/s and
#      peak GPU memory,
#   3. with --ablation, the dense-prefix ablation at paper scale on the same data.
# Without CUDA it stops at once with exit status 3 and says so. It exits non-zero if any part failed.
#
#   bash scripts/gpu_smoke.sh [--steps N] [--micro-batch-size N] [--global-batch-size N] [--seq-length N]
#       [--patients N] [--workdir DIR] [--skip-tests] [--ablation] [--preset NAME] [--allow-cpu]
#
# --preset (default paper) and --allow-cpu (fp32, no loader workers, no GPU figures) exist to test this script itself on
# a CPU machine (tests/unit/test_gpu_files.py); a CPU run is never a smoke result.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

steps=30 micro=4 global=16 seq=2048 patients=2000 workdir="" skip_tests=0 ablation=0 preset=paper allow_cpu=0
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --micro-batch-size) micro="$2"; shift 2 ;;
    --global-batch-size) global="$2"; shift 2 ;;
    --seq-length) seq="$2"; shift 2 ;;
    --patients) patients="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --skip-tests) skip_tests=1; shift ;;
    --ablation) ablation=1; shift ;;
    --preset) preset="$2"; shift 2 ;;
    --allow-cpu) allow_cpu=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_smoke.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

# The image's python has everything; elsewhere the repository's .venv, if there is one.
if [[ -n "${PYTHON:-}" ]]; then python="$PYTHON"
elif [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"
else python="$(command -v python3 || command -v python || true)"; fi
if [[ -z "$python" ]] || ! command -v "$python" > /dev/null; then
  echo "gpu_smoke.sh: no python found (${python:-none}); set PYTHON" >&2
  exit 2
fi

if ! ALLOW_CPU="$allow_cpu" "$python" - <<'EOF'
import os, sys
try:
    import torch
except ImportError as err:
    sys.exit(f"gpu_smoke.sh: no CUDA: torch does not import ({err})")
if not torch.cuda.is_available() and os.environ["ALLOW_CPU"] != "1":
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    sys.exit(f"gpu_smoke.sh: no CUDA: torch {torch.__version__} ({build}) sees no GPU. Run this on a GPU machine, "
             "e.g. in the docker/ image: docker run --gpus all ... bash scripts/gpu_smoke.sh")
EOF
then
  exit 3
fi
precision=bf16 workers=2
if [[ $allow_cpu -eq 1 ]]; then precision=fp32 workers=0; fi

"$python" - <<'EOF'
import importlib.metadata, torch
from sparseehr_mcore.compat import have_apex, have_transformer_engine

def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "installed (version unknown)"

names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none (CPU test run)"
te = version("transformer-engine") if have_transformer_engine() else "NOT importable (tests/gpu will skip, layers fall back to local)"
print(f"devices: {names}")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), megatron-core {version('megatron-core')}, "
      f"transformer-engine {te}, NVIDIA apex {'yes' if have_apex() else 'no'}")
EOF

status=0
if [[ $skip_tests -eq 0 ]]; then
  echo "== tests/gpu"
  "$python" -m pytest tests/gpu -m gpu -q -p no:cacheprovider || status=$?
fi

workdir="${workdir:-$(mktemp -d -t sparseehr-gpu-smoke.XXXXXX)}"
mkdir -p "$workdir"
echo "== synthetic cohort of $patients patients, preprocessed, in $workdir"
"$python" -m sparseehr_mcore.data.synthetic "$workdir/cohort" --patients "$patients"
"$python" tools/preprocess_ehr.py --source events --input "$workdir/cohort" --output-dir "$workdir/data"

# One GPU, no checkpoint (saving 0.8B parameters with Adam state would dominate a smoke run).
cat > "$workdir/run.yaml" <<EOF
model: {preset: $preset, vocab_size: tokenizer, seq_length: $seq, transformer_impl: auto}
parallel: {tensor_model_parallel_size: 1, pipeline_model_parallel_size: 1, expert_model_parallel_size: 1}
data: {preprocessed_dirs: ["$workdir/data"], num_workers: $workers}
train: {train_iters: $steps, micro_batch_size: $micro, global_batch_size: $global, lr: 3.0e-4, min_lr: 3.0e-5,
        warmup_iters: 2, precision: $precision, eval_interval: 0}
checkpoint: {save_dir: null}
logging: {log_interval: 1}
EOF
echo "== $precision pretraining of the $preset preset: $steps steps of $global x $seq tokens"
"$python" - "$workdir/run.yaml" <<'EOF' || status=$?
import re, statistics, sys
import torch
from sparseehr_mcore.config.run import load_run_values, resolve_run_config
from sparseehr_mcore.training.inputs import tokenizer_vocab_size
from sparseehr_mcore.training.loop import pretrain

run = resolve_run_config(load_run_values(sys.argv[1]), {}, tokenizer_vocab_size=tokenizer_vocab_size, where=sys.argv[1])
lines = []
def log(line):
    print(line, flush=True)
    lines.append(line)
pretrain(run, log_fn=log)
# tok/s of each logged step (log_interval 1); the first steps carry start-up (cuBLAS/TE autotuning).
rates = [float(m.group(1).replace(",", "")) for line in lines if (m := re.search(r"\| ([\d,]+) tok/s \|", line))]
steady = rates[3:] or rates
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (a test of this script, not a result)"
print(f"SMOKE tokens/s: median {statistics.median(steady):,.0f} over steps {len(rates) - len(steady) + 1}-{len(rates)} "
      f"(sequence positions, padding included; one {device})")
if torch.cuda.is_available():
    print(f"SMOKE peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated "
          f"(torch.cuda.max_memory_allocated), {torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved")
else:
    print("SMOKE peak GPU memory: n/a (no GPU)")
EOF

if [[ $ablation -eq 1 ]]; then
  echo "== dense-prefix ablation at paper scale (D = 0, 2, 4, 8)"
  "$python" tools/ablate_dense_prefix.py --data "$workdir/data" --scale "$preset" --seq-length "$seq" \
      --micro-batch-size "$micro" --global-batch-size "$global" --steps 20 --untimed-steps 3 \
      --precision "$precision" --output-dir "$workdir/ablation" || status=$?
fi

echo "== done (status $status); outputs in $workdir"
exit "$status"
