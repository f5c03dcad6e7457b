#!/usr/bin/env bash
# GPU check: the same code on CUDA. Runs the CUDA-capable tests, trains every model's default config
# (cpu-suite widths) for a few hundred steps with bf16 autocast and channels_last, records img/s and
# GFLOP/img (MFU = GFLOP/s over the GPU's bf16 peak), and evaluates one run. Usage:
#   benchmarks/gpu_check.sh [OUT_DIR]        (default results/gpu-check; needs FER2013 in $EXPRBENCH_DATA)
# Writes OUT_DIR/train_speed.jsonl (one line per model), OUT_DIR/eval.json and the logs.
set -uo pipefail
OUT="${1:-results/gpu-check}"
STEPS="${STEPS:-300}"
PY="${PY:-python}"
mkdir -p "$OUT"
"$PY" - <<'PYEOF' > "$OUT/device.txt"
import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))
PYEOF
cat "$OUT/device.txt"
"$PY" -m pytest -q tests/models tests/runs/test_harness.py -x -k "not smoke" 2>&1 | tail -5 | tee "$OUT/tests.log"
for m in gan cgan acgan bigan bicogan ccyclegan vae flow; do
  set_args=$("$PY" -c "from exprbench.benchmarks.suite import load_suite
print(' '.join('--set ' + o for p in load_suite('cpu').grid if p.model == '$m' for o in p.overrides if o.startswith('model.')) if True else '')" | head -1)
  rm -rf "$OUT/runs/$m"
  "$PY" -m exprbench train "$m" $set_args --set train.device=cuda --set train.amp=true --set train.channels_last=true \
      --set train.sample_every=0 --set train.log_every=50 --steps "$STEPS" --out "$OUT/runs/$m" > "$OUT/train_$m.log" 2>&1
  "$PY" - "$m" "$OUT" <<'PYEOF' >> "$OUT/train_speed.jsonl"
import json, sys, torch
from torch.utils.flop_counter import FlopCounterMode
from exprbench.runs.loader import load_trained
from exprbench.models.base import Batch
m, out = sys.argv[1], sys.argv[2]
status = json.load(open(f"{out}/runs/{m}/status.json"))
cfg, model, spec, _ = load_trained(f"{out}/runs/{m}", "cuda")
model.train(True)
x = torch.rand(64, spec.channels, spec.height, spec.width, device="cuda") * 2 - 1
counter = FlopCounterMode(display=False)
with counter, torch.autocast("cuda", dtype=torch.bfloat16):
    model.training_step(Batch(x.contiguous(memory_format=torch.channels_last), torch.randint(0, spec.num_classes, (64,), device="cuda")), 0)
gf = counter.get_total_flops() / 1e9 / 64
print(json.dumps({"model": m, "status": status["status"], "img_per_s": status.get("img_per_s"), "gflop_per_img": gf,
                  "gflop_per_s": gf * (status.get("img_per_s") or 0), "device": status.get("device_name"),
                  "peak_gpu_memory_mib": status.get("peak_gpu_memory_mib")}))
PYEOF
  tail -n 1 "$OUT/train_speed.jsonl"
done
"$PY" -m exprbench evaluate "$OUT/runs/cgan" --device cuda --metrics fid2k_train --metrics acc_gen > "$OUT/evaluate.log" 2>&1
cp "$OUT/runs/cgan/eval.json" "$OUT/eval.json" 2>/dev/null
tail -n 20 "$OUT/evaluate.log"
