#!/usr/bin/env bash
# Short trials of the options that are in the code but not yet measured (issues "Artefact-free adversarial
# baselines", items 4-6, and "VAE and flow rows that work", items 1-2), at the cpu suite's widths, 48,000
# training images (750 steps x 64; InterFaceGAN: its one-step fit on the GAN variant named), seed 0, one CPU
# thread per run, into results/ablation2/runs/<name>; `.venv/bin/python benchmarks/ablations/table.py
# results/ablation2` writes the table. Each variant is scored by the protocols that judge it.
# Usage: benchmarks/ablations/baselines_round2.sh [NAME...]   (default: every variant; finished ones are skipped)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-results/ablation2/runs}
DATA=${EXPRBENCH_DATA:-../shared/data/fer2013.zip}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
GAN_M="fid10k_train_ml,pr10k_train_ml,spectral"
COND_M="fid10k_train_ml,pr10k_train_ml,acc_gen,acc_gen_lowpass,c_response,spectral"
declare -A VARIANTS=(
  [gan-nearest]="gan --set model.ch=32"
  [gan-nearest-map2]="gan --set model.ch=32 --set model.mapping_layers=2"
  [ifg-z]="interfacegan --set model.base_run=$OUT/gan-nearest"
  [ifg-w]="interfacegan --set model.base_run=$OUT/gan-nearest-map2 --set model.space=w"
  [bicogan-default]="bicogan --set model.ch=24"
  [bicogan-recon]="bicogan --config recon --set model.ch=24"
  [ccyclegan-direct]="ccyclegan --set model.ch=16"
  [ccyclegan-attention]="ccyclegan --set model.ch=16 --set model.output=attention"
  [ccyclegan-residual]="ccyclegan --set model.ch=16 --set model.output=residual"
  [vae-default]="vae --set model.ch=16"
  [vae-class-prior-cls1]="vae --set model.ch=16 --set model.prior=class --set model.cls_weight=1"
  [flow-default]="flow --set model.ch=48 --set model.steps_per_level=8"
  [flow-sigmoidinv-wy0.05]="flow --set model.ch=48 --set model.steps_per_level=8 --set model.scale_map=sigmoid_inv --set model.weight_y=0.05"
)
declare -A METRICS=(
  [gan-nearest]=$GAN_M [gan-nearest-map2]=$GAN_M [ifg-z]="edit_success,acc_gen" [ifg-w]="edit_success,acc_gen"
  [bicogan-default]="$COND_M,translate_acc_test,translate_fid_test" [bicogan-recon]="$COND_M,translate_acc_test,translate_fid_test"
  [ccyclegan-direct]="translate_acc_test,translate_fid_test" [ccyclegan-attention]="translate_acc_test,translate_fid_test"
  [ccyclegan-residual]="translate_acc_test,translate_fid_test"
  [vae-default]="$COND_M,bpd_test" [vae-class-prior-cls1]="$COND_M,bpd_test"
  [flow-default]="$COND_M,bpd_test" [flow-sigmoidinv-wy0.05]="$COND_M,bpd_test"
)
ORDER=(gan-nearest gan-nearest-map2 ifg-z ifg-w bicogan-default bicogan-recon ccyclegan-direct ccyclegan-attention
       ccyclegan-residual vae-default vae-class-prior-cls1 flow-default flow-sigmoidinv-wy0.05)
for name in "${@:-${ORDER[@]}}"; do
  run="$OUT/$name"
  if [ -f "$run/eval.json" ]; then echo "$name: done"; continue; fi
  steps=750; case $name in ifg-*) steps=1 ;; esac
  # shellcheck disable=SC2086
  "$BIN/exprbench" train ${VARIANTS[$name]} --steps $steps --seed 0 --device cpu --data "$DATA" --out "$run" \
    --set train.sample_every=250 --set train.ckpt_every=250 --resume
  "$BIN/exprbench" evaluate "$run" --metrics "${METRICS[$name]}" --device cpu --data "$DATA"
done
