"""Print the newest pytest-benchmark run of ``make perf`` (``.benchmarks/*/NNNN_*.json``) as a markdown
table: per model, config, memory format and thread count, training img/s, GFLOP per image and the
achieved GFLOP/s. Usage: ``python benchmarks/perf/summarize.py [RUN.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def newest_run(root: Path = Path(".benchmarks")) -> Path:
    """The newest saved run under ``root`` (raises FileNotFoundError when there is none)."""
    runs = sorted(root.glob("*/*.json"), key=lambda p: p.name)
    if not runs:
        raise FileNotFoundError(f"no pytest-benchmark run under {root}/ (run `make perf` first)")
    return runs[-1]


def table(run: dict) -> str:
    """Markdown rows of the training benchmarks of a pytest-benchmark JSON document."""
    rows = ["| model | config | format | threads | img/s | GFLOP/img | GFLOP/s |", "|---|---|---|---:|---:|---:|---:|"]
    for b in run["benchmarks"]:
        e = b.get("extra_info", {})
        if "gflop_per_img" not in e:
            continue
        gflop = "–" if e["gflop_per_img"] is None else f"{e['gflop_per_img']:.3f}"
        rate = "–" if e.get("gflop_per_s") is None else f"{e['gflop_per_s']:.1f}"
        rows.append(f"| {e['model']} | {e['config']} | {e['memory_format']} | {e['threads']} | {e['img_per_s']:.1f} | "
                    f"{gflop} | {rate} |")
    machine = run.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "?"))
    return f"{cpu}, commit {run.get('commit_info', {}).get('id', '')[:8]}\n\n" + "\n".join(rows)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else newest_run()
    print(f"{path}\n")
    print(table(json.loads(path.read_text())))
