#!/usr/bin/env bash
# Ablation of the issue "Artefact-free adversarial baselines" (items 1-3): resize-conv up-sampling, DiffAugment
# on D and C, and G's class-loss weight, on the cGAN and the GAN at the cpu suite's widths, 48,000 training
# images (750 steps x 64), seed 0, one CPU thread per run. Each variant trains into results/ablation/runs/<name>
# and is evaluated with the realism-space FID and precision/recall, acc_gen, its low-pass companion and the
# spectral footprint; `.venv/bin/python benchmarks/ablations/table.py results/ablation` writes the table.
# Usage: benchmarks/ablations/gan_artefacts.sh [NAME...]   (default: every variant; finished ones are skipped)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-results/ablation/runs}
DATA=${EXPRBENCH_DATA:-../shared/data/fer2013.zip}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
METRICS="fid10k_train_ml,pr10k_train_ml,acc_gen,acc_gen_lowpass,spectral"
declare -A VARIANTS=(
  [cgan-deconv]="cgan --set model.ch=32"
  [cgan-nearest]="cgan --set model.ch=32 --set model.upsample=nearest"
  [cgan-nearest-da]="cgan --set model.ch=32 --set model.upsample=nearest --set model.diffaugment=translation,cutout"
  [cgan-nearest-da-cls0.3]="cgan --set model.ch=32 --set model.upsample=nearest --set model.diffaugment=translation,cutout --set model.aux_cls_weight=0.3"
  [gan-deconv]="gan --set model.ch=32"
  [gan-nearest-da]="gan --set model.ch=32 --set model.upsample=nearest --set model.diffaugment=translation,cutout"
)
ORDER=(cgan-deconv cgan-nearest-da gan-deconv gan-nearest-da cgan-nearest cgan-nearest-da-cls0.3)
for name in "${@:-${ORDER[@]}}"; do
  run="$OUT/$name"
  if [ -f "$run/eval.json" ] && grep -q '"spectral"' "$run/eval.json"; then echo "$name: done"; continue; fi
  # shellcheck disable=SC2086
  "$BIN/exprbench" train ${VARIANTS[$name]} --steps 750 --seed 0 --device cpu --data "$DATA" --out "$run" \
    --set train.sample_every=250 --set train.ckpt_every=250 --resume
  "$BIN/exprbench" evaluate "$run" --metrics "$METRICS" --device cpu --data "$DATA"
done
