"""The real FER2013 zip (../shared/data/fer2013.zip or $EXPRBENCH_DATA): counts and one short run."""

from __future__ import annotations

import json

from exprbench.runs.config import resolve_config
from exprbench.data import load_fer2013
from exprbench.runs.harness import Trainer

# From ../shared/data/README.md: per emotion over all splits, and per split.
README_COUNTS = {"angry": 4953, "disgust": 547, "fear": 5121, "happy": 8989, "sad": 6077,
                 "surprise": 4002, "neutral": 6198}


def test_counts_match_the_data_readme(real_zip):
    ds = load_fer2013(real_zip)
    counts = ds.counts()
    assert {n: sum(counts[s][n] for s in counts) for n in ds.class_names} == README_COUNTS
    assert {s: sum(v.values()) for s, v in counts.items()} == {"train": 28709, "val": 3589, "test": 3589}
    assert ds.fingerprint == "48b21e4a4cbd4f3254e9b100d7da8dc8685af4a0af0e3cc278034fba4b4a7489"
    fer6 = load_fer2013(real_zip, "fer6")
    assert len(fer6) == 35340 and "disgust" not in fer6.class_names


def test_short_cgan_run_on_real_data(real_zip, tmp_path):
    cfg = resolve_config("cgan", "default", [
        f"data.path={real_zip}", "model.ch=8", "train.steps=4", "train.batch_size=16", "train.log_every=2",
        "data.augment.rotate=[-50, 30]", "data.augment.translate=0.1",
    ])
    result = Trainer(cfg, tmp_path / "run", progress=False).run()
    assert result["status"] == "completed" and result["step"] == 4
    rec = [json.loads(x) for x in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert rec[-1]["step"] == 4 and rec[-1]["img_s"] > 0
    assert (tmp_path / "run" / "samples" / "step_000004.png").exists()
