"""The ablation table of ``benchmarks/ablations/*.sh``: one row per variant run directory (its name is the
variant), the columns that judge it (realism FID and recall, ``acc_gen`` and its low-pass excess drop, the
checkerboard ratio, c response, bits/dim, translation and editing scores; a column no variant measured is left
out), read from each run's ``eval.json`` and ``status.json``. Usage::

    .venv/bin/python benchmarks/ablations/table.py results/ablation      # writes results/ablation/ablation.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from exprbench.core.io import read_json, write_text
from exprbench.metrics.validity.study_files import markdown_table

COLUMNS = {  # column -> (protocol, detail key or None)
    "FID_ml ↓": ("fid10k_train_ml", None), "recall_ml ↑": ("pr10k_train_ml", "recall"),
    "precision_ml ↑": ("pr10k_train_ml", "precision"), "acc_gen ↑": ("acc_gen", None),
    "acc_gen blurred ↑": ("acc_gen_lowpass", None), "excess drop (blur) ↓": ("acc_gen_lowpass", "excess_drop"),
    "excess drop (48->24->48) ↓": ("acc_gen_lowpass", "resample_excess_drop"),
    "checker ratio (1 = real)": ("spectral", None), "rows/cols ratio": ("spectral", "rowcol_ratio"),
    "c response ↑": ("c_response", None), "bits/dim ↓": ("bpd_test", None),
    "translate acc ↑": ("translate_acc_test", None), "identity SSIM ↑": ("translate_acc_test", "identity_ssim"),
    "translate FID ↓": ("translate_fid_test", None), "edit success ↑": ("edit_success", None),
    "edit identity SSIM ↑": ("edit_success", "identity_ssim"),
}


def ablation_frame(root: Path) -> pd.DataFrame:
    """One row per run directory under ``root/runs`` that has an eval.json: its name, steps, img/s and the
    :data:`COLUMNS` (None where a protocol did not run)."""
    rows = []
    for run in sorted(p for p in (Path(root) / "runs").iterdir() if (p / "eval.json").exists()):
        metrics = (read_json(run / "eval.json") or {}).get("metrics") or {}
        status = read_json(run / "status.json") or {}
        row = {"variant": run.name, "steps": status.get("step"), "img/s": status.get("img_per_s")}
        for col, (proto, key) in COLUMNS.items():
            e = metrics.get(proto) or {}
            row[col] = (e.get("details") or {}).get(key) if key else e.get("value")
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.dropna(axis=1, how="all") if not df.empty else df  # columns no variant measured


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "results/ablation")
    df = ablation_frame(root)
    body = markdown_table(df.round(3))
    write_text(root / "ablation.md", body + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
