#!/usr/bin/env bash
# The main job on the embedded default data, on CPU, end to end:
#   1. a synthetic claims cohort (ICD-10) and a second "hospital" coded in ICD-9 (python -m sparseehr_mcore.synthetic)
#   2. preprocess both; the hospital with the claims' frozen tokenizer, through the forward GEM
#   3. pretrain the tiny hybrid dense-to-MoE model on the claims with torchrun (CPU, gloo)
#   4. export it to Hugging Face (Qwen2-MoE)
#   5. zero-shot next-visit evaluation on the hospital (or on a MIMIC-IV folder: --mimic-iv DIR)
#   6. the summary: model vs population-frequency and history baselines at R@10/R@20
# Everything lands in outputs/quickstart/ (replaced on each run). About 10 minutes on 2 cores.
#
#   bash scripts/quickstart.sh [--patients N] [--hospital-patients N] [--steps N] [--mimic-iv DIR] [--out DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
patients=4000 hospital_patients=300 steps=400 mimic_iv="" out="outputs/quickstart" eval_patients=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --patients) patients="$2"; shift 2 ;;
    --hospital-patients) hospital_patients="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --mimic-iv) mimic_iv="$(cd "$2" && pwd)"; shift 2 ;;
    --eval-patients) eval_patients="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bash "$root/scripts/ensure_venv.sh"
cd "$root"
python="$root/.venv/bin/python"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
step() { printf '\n== %s ==\n' "$*"; }
rm -rf "$out"
mkdir -p "$out"

step "1/6 synthetic cohorts: $patients claims patients (ICD-10), $hospital_patients hospital patients (ICD-9)"
"$python" -m sparseehr_mcore.synthetic "$out/claims" --patients "$patients" --seed 0
"$python" -m sparseehr_mcore.synthetic "$out/hospital" --profile hospital --patients "$hospital_patients" --seed 1

step "2/6 preprocess (the hospital with the claims' frozen tokenizer)"
"$python" tools/preprocess_ehr.py --source events --input "$out/claims" --output-dir "$out/claims-data"
if [[ -n "$mimic_iv" ]]; then
  eval_source=mimic-iv eval_input="$mimic_iv" eval_name="MIMIC-IV ($mimic_iv)"
else
  eval_source=events eval_input="$out/hospital" eval_name="the synthetic ICD-9 hospital"
fi
# The second site is all evaluation data: every patient in one split.
"$python" tools/preprocess_ehr.py --source "$eval_source" --input "$eval_input" --output-dir "$out/eval-data" \
  --tokenizer-dir "$out/claims-data/tokenizer" --split 0,0,1

step "3/6 pretrain the tiny model on the claims ($steps steps, torchrun, CPU)"
"$python" -m torch.distributed.run --standalone --nproc_per_node 1 examples/pretrain_sparseehr.py \
  --config examples/configs/quickstart.yaml --data.preprocessed_dirs "$out/claims-data" \
  --checkpoint.save_dir "$out/run" --train.train_iters "$steps" \
  --train.warmup_iters "$(( steps / 20 > 0 ? steps / 20 : 1 ))" --train.eval_interval "$(( steps / 4 > 0 ? steps / 4 : 1 ))" \
  --checkpoint.save_interval "$(( steps / 4 > 0 ? steps / 4 : 1 ))"

step "4/6 export to Hugging Face"
"$python" tools/convert_checkpoint.py --to hf --input "$out/run" --output "$out/hf" \
  --data-description "Synthetic claims cohort ($patients patients, python -m sparseehr_mcore.synthetic --seed 0)"

step "5/6 zero-shot next-visit evaluation on $eval_name"
"$python" examples/evaluate_next_visit.py --checkpoint "$out/hf" --data "$out/eval-data" --output "$out/evaluation" \
  ${eval_patients:+--max-patients "$eval_patients"}

step "6/6 done"
cat <<DONE
report:  $out/evaluation/report.md (all figures in report.json)
plots:   $out/evaluation/*.png
export:  $out/hf (AutoModelForCausalLM.from_pretrained)
run:     $out/run (tensorboard --logdir $out/run/tensorboard)
DONE
